"""``transform``: one JMESPath expression over a value, e.g. to reshape, filter or sort a list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from functions.executor.tools import _jmes
from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "transform"
DESCRIPTION = 'Apply one JMESPath expression to a value: {"value": ..., "expression": "..."} -> {"result": ...}.'
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout


class Params(StrictParams):
    value: Any = Field(description="The JSON value to transform.")
    expression: str = Field(
        min_length=1, description='A JMESPath expression, e.g. "items[?price > `10`].name | sort(@)".'
    )

    @field_validator("expression")
    @classmethod
    def _parses(cls, expression: str) -> str:
        return _jmes.check_expression(expression)


class Output(BaseModel):
    result: Any = Field(description="What the expression evaluated to (null when it matched nothing).")


def run(params: Params, ctx: ToolContext) -> Output:
    return Output(result=_jmes.search(params.expression, params.value))
