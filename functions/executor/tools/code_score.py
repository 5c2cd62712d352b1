"""``code.score``: a 0-10 quality score for Python source that rises as its issues are fixed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from functions.executor.tools import _code

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "code.score"
DESCRIPTION = "Score Python source 0-10 (10: no issues); fixing any detected issue raises the score."
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout


class Params(_code.SourceParams, _code.IssueOptions):
    pass


class Output(BaseModel):
    quality_score: float = Field(ge=0, le=10, description="10 * size / (size + penalty), two decimals.")
    grade: Literal["A", "B", "C", "D", "F"] = Field(description="A >= 9, B >= 8, C >= 7, D >= 5, else F.")
    issue_count: int
    penalty: float = Field(description="Sum of issue weights (missing docstring 1, magic number 0.5, ...).")
    size: float = Field(description="Functions and classes + code lines / 40 (at least 1).")
    breakdown: dict[str, float] = Field(description="Penalty per issue kind.")
    function_count: int
    average_complexity: float
    max_complexity: int


def _grade(score: float) -> Literal["A", "B", "C", "D", "F"]:
    if score >= 9:
        return "A"
    if score >= 8:
        return "B"
    if score >= 7:
        return "C"
    return "D" if score >= 5 else "F"


@_code.gc_paused()
def run(params: Params, ctx: ToolContext) -> Output:
    tree = _code.parse(params.source)
    issues = _code.detect_issues(params.source, tree, params)
    result = _code.score(params.source, tree, issues)
    cc = [f.complexity for f in _code.complexities(tree)]
    ctx.log(f"quality score {result.quality_score} with {len(issues)} issue(s)")
    return Output(
        quality_score=result.quality_score,
        grade=_grade(result.quality_score),
        issue_count=len(issues),
        penalty=result.penalty,
        size=result.size,
        breakdown=result.breakdown,
        function_count=len(cc),
        average_complexity=round(sum(cc) / len(cc), 2) if cc else 0.0,
        max_complexity=max(cc, default=0),
    )
