"""``code.complexity``: McCabe cyclomatic complexity of each function of Python source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from functions.executor.tools import _code

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "code.complexity"
DESCRIPTION = "Cyclomatic complexity (1 + decision points) and its A-F rank for each function of Python source."
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout


class Params(_code.SourceParams):
    pass


class Output(BaseModel):
    functions: list[_code.FunctionComplexity] = Field(description="In source order.")
    average_complexity: float = Field(description="Mean over functions; 0 when there are none.")
    max_complexity: int = Field(description="Highest function complexity; 0 when there are none.")
    total_complexity: int


@_code.gc_paused()
def run(params: Params, ctx: ToolContext) -> Output:
    funcs = _code.complexities(_code.parse(params.source))
    values = [f.complexity for f in funcs]
    return Output(
        functions=funcs,
        average_complexity=round(sum(values) / len(values), 2) if values else 0.0,
        max_complexity=max(values, default=0),
        total_complexity=sum(values),
    )
