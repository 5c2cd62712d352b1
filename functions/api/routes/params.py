"""Path parameters the routes share, declared once so their limits and descriptions agree everywhere."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

GraphId = Annotated[str, Path(min_length=1, max_length=64, description="a graph id, g_<12 hex>")]
RunId = Annotated[str, Path(min_length=1, max_length=64, description="a run id, r_<16 hex>")]
ScheduleId = Annotated[str, Path(min_length=1, max_length=64, description="a schedule id, s_<12 hex>")]
NodeId = Annotated[str, Path(min_length=1, max_length=64, description="a node id of the run's graph")]
