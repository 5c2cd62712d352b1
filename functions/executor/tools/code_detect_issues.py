"""``code.detect_issues``: review findings in Python source, each with its line number."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from functions.executor.tools import _code

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "code.detect_issues"
DESCRIPTION = (
    "Find TODO/FIXME comments, long lines, deep nesting, magic numbers, missing docstrings and complex functions."
)
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout


class Params(_code.SourceParams, _code.IssueOptions):
    pass


class Output(BaseModel):
    issues: list[_code.Issue] = Field(description="Sorted by line; code.suggest takes this list as is.")
    issue_count: int
    counts: dict[str, int] = Field(description="Issues per kind.")


@_code.gc_paused()
def run(params: Params, ctx: ToolContext) -> Output:
    issues = _code.detect_issues(params.source, _code.parse(params.source), params)
    counts: dict[str, int] = {}
    for issue in issues:
        counts[issue.kind] = counts.get(issue.kind, 0) + 1
    return Output(issues=issues, issue_count=len(issues), counts=dict(sorted(counts.items())))
