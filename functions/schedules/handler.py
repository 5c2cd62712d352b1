"""The schedule function: EventBridge Scheduler invokes it at each fire time of a schedule, and it starts a run
of the graph's latest version with the schedule's input.

The start goes through the API's run-start path with its Idempotency-Key machinery, keyed by the schedule and
the fire time (``<aws.scheduler.scheduled-time>`` in the target input): Scheduler delivers at least once and
retries failures, and every delivery of one fire starts at most one run. A fire whose schedule or graph is
gone (deleted meanwhile) starts nothing and is not retried.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import idempotency  # noqa: F401 - every fire starts through it (at init)

from functions.api.runs_service import start_run_idempotently
from functions.api.services import Services
from functions.errors import NotFoundError
from functions.settings import PerSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(service="stepgraph-schedules")
IDEMPOTENCY_PREFIX = "scheduled_run"
"""Keeps fire-time keys apart from the API's Idempotency-Key values (the same table, another prefix)."""
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_services: PerSettings[Services] = PerSettings(Services)


def start_scheduled_run(services: Services, event: Any, context: Any = None) -> dict[str, Any]:
    """Start the run of one fire: ``{"started": true, "run_id", ...}``, or ``{"started": false, "reason"}``."""
    if not isinstance(event, dict):
        logger.error("not a schedule event", extra={"event_type": type(event).__name__})
        return {"started": False, "reason": "not a schedule event"}
    graph_id, schedule_id, scheduled_time = (event.get(k) for k in ("graph_id", "schedule_id", "scheduled_time"))
    valid = (
        isinstance(graph_id, str)
        and isinstance(schedule_id, str)
        and isinstance(scheduled_time, str)
        and _ID.fullmatch(graph_id) is not None
        and _ID.fullmatch(schedule_id) is not None
        and _TIME.fullmatch(scheduled_time) is not None
    )
    if not valid:
        logger.error("not a schedule event", extra={"keys": sorted(str(k) for k in event)})
        return {"started": False, "reason": "not a schedule event (graph_id, schedule_id, scheduled_time)"}
    assert isinstance(graph_id, str) and isinstance(schedule_id, str) and isinstance(scheduled_time, str)
    where = {"graph_id": graph_id, "schedule_id": schedule_id, "scheduled_time": scheduled_time}
    try:
        schedule = services.schedules.get(graph_id, schedule_id)
    except NotFoundError:
        logger.info("schedule was deleted: nothing to start", extra=where)
        return {"started": False, "reason": "the schedule was deleted", **where}
    trigger = {"type": "schedule", "schedule_id": schedule_id, "scheduled_time": scheduled_time}
    try:
        started = start_run_idempotently(
            services,
            graph_id,
            schedule.input,
            f"{schedule_id}#{scheduled_time}",
            context,
            trigger=trigger,
            key_prefix=IDEMPOTENCY_PREFIX,
        )
    except NotFoundError:
        logger.info("graph was deleted: nothing to start", extra=where)
        return {"started": False, "reason": "the graph was deleted", **where}
    logger.info("scheduled run started", extra={**where, "run_id": started["run_id"]})
    return {"started": True, **where, "run_id": started["run_id"], "version": started["version"]}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return start_scheduled_run(_services.get(), event, context)
