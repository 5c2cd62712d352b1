"""``code.suggest``: one suggestion per issue, and the source with the mechanical fixes applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from functions.executor.tools import _code

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "code.suggest"
DESCRIPTION = "Turn review issues into prioritized suggestions and return the source with safe fixes applied."
ISOLATED = True  # CPU-bound: runs in a worker process the executor kills at the node's timeout


class Params(_code.SourceParams, _code.IssueOptions):
    issues: list[_code.Issue] | None = Field(
        default=None, description="code.detect_issues' issues; detected from source when omitted."
    )
    apply_fixes: bool = Field(
        default=True, description="Add placeholder docstrings and strip trailing whitespace into revised_source."
    )


class Suggestion(BaseModel):
    line: int
    kind: str
    priority: int = Field(description="1 (do first) to 4.")
    function: str | None
    suggestion: str


class Output(BaseModel):
    suggestions: list[Suggestion] = Field(description="Most urgent first, then by line.")
    suggestion_count: int
    revised_source: str = Field(description="The source after the fixes applied (unchanged when none apply).")
    fixes_applied: list[str]


def _suggestion(issue: _code.Issue) -> dict[str, Any]:
    """The suggestion for one issue, as a dict: ``Output`` builds the models (in pydantic-core, tens of thousands
    at once for a large source)."""
    template = _code.SUGGESTION[issue.kind]
    text = template.format(function=issue.function or "this code", text=issue.message.split(":")[0])
    return {
        "line": issue.line,
        "kind": issue.kind,
        "priority": _code.PRIORITY[issue.kind],
        "function": issue.function,
        "suggestion": f"line {issue.line}: {text} ({issue.message})",
    }


def _urgency(suggestion: dict[str, Any]) -> tuple[int, int, str]:
    return suggestion["priority"], suggestion["line"], suggestion["kind"]


@_code.gc_paused()
def run(params: Params, ctx: ToolContext) -> Output:
    tree = _code.parse(params.source)
    issues = params.issues if params.issues is not None else _code.detect_issues(params.source, tree, params)
    suggestions = sorted(map(_suggestion, issues), key=_urgency)
    revised, fixes = params.source, list[str]()
    if params.apply_fixes:
        revised, fixes = _code.add_docstrings(revised, tree)
        revised, stripped = _code.strip_trailing_whitespace(revised)
        if stripped:
            fixes.append(f"removed trailing whitespace on {stripped} line{'s' if stripped != 1 else ''}")
    if fixes:
        ctx.log(f"applied {len(fixes)} fix(es)")
    return Output.model_validate(
        {
            "suggestions": suggestions,
            "suggestion_count": len(suggestions),
            "revised_source": revised,
            "fixes_applied": fixes,
        }
    )
