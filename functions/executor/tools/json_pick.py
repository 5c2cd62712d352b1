"""``json.pick``: named JMESPath expressions over one JSON value, each result under its name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, RootModel, field_validator

from functions.executor.tools import _jmes
from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "json.pick"
DESCRIPTION = 'Pick fields out of JSON with JMESPath: {"data": ..., "fields": {"title": "title"}} -> {"title": ...}.'
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout


class Params(StrictParams):
    data: Any = Field(description="The JSON value to pick from, e.g. an http.get node's json.")
    fields: dict[str, str] = Field(
        min_length=1,
        description="Output field name -> JMESPath expression. A path that matches nothing gives null.",
    )

    @field_validator("fields")
    @classmethod
    def _expressions_parse(cls, fields: dict[str, str]) -> dict[str, str]:
        for name, expression in fields.items():
            try:
                _jmes.check_expression(expression)
            except ValueError as exc:
                raise ValueError(f"fields.{name}: {exc}") from None
        return fields


class Output(RootModel[dict[str, Any]]):
    """One key per name in ``fields``, holding what its expression selected (null when nothing matched)."""


def run(params: Params, ctx: ToolContext) -> Output:
    return Output({name: _jmes.search(expression, params.data) for name, expression in params.fields.items()})
