"""``util.echo``: returns its params unchanged (a placeholder step, and the simplest way to shape data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, RootModel

from functions.executor.tools.base import OpenParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "util.echo"
DESCRIPTION = "Return the params unchanged: any JSON object in, the same object out."


class Params(OpenParams):
    """Any JSON object, e.g. ``{"value": "{{ item }}"}``."""


class Output(RootModel[dict[str, Any]]):
    """The params, as given."""

    model_config = ConfigDict(json_schema_extra={"description": "The params, unchanged."})


def run(params: Params, ctx: ToolContext) -> Output:
    return Output(params.model_dump())
