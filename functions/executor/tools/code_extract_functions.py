"""``code.extract_functions``: the functions and methods of Python source, with their line numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from functions.executor.tools import _code

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "code.extract_functions"
DESCRIPTION = "List the functions and methods of Python source with line numbers, arguments and docstring presence."
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout


class Params(_code.SourceParams):
    pass


class Output(BaseModel):
    functions: list[_code.FunctionInfo] = Field(description="In source order; nested ones have dotted qualnames.")
    function_count: int
    class_count: int
    line_count: int


@_code.gc_paused()
def run(params: Params, ctx: ToolContext) -> Output:
    import ast

    tree = _code.parse(params.source)
    funcs = _code.functions(tree)
    classes = sum(1 for d in _code.definitions(tree) if isinstance(d.node, ast.ClassDef))  # one pass, shared
    return Output(
        functions=funcs,
        function_count=len(funcs),
        class_count=classes,
        line_count=len(params.source.splitlines()),
    )
