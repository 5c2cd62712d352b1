"""Exceptions raised by the pure core; the root of every stepgraph error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


class StepgraphError(Exception):
    """Root of every error stepgraph raises on purpose."""


class SpecError(StepgraphError):
    """The graph spec is invalid; ``details`` name the node, edge, field or position of each problem."""

    status = 422

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class LimitError(SpecError):
    """The spec is over a configured limit (413 for the body size, 422 for counts)."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None, status: int = 422) -> None:
        super().__init__(message, details)
        self.status = status


class JsonInputError(StepgraphError):
    """Text that is not JSON stepgraph can take (``NaN``, a lone surrogate, a syntax error): answered 400."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class CompileError(StepgraphError):
    """The compiler produced a definition that failed its structural check: a bug, never bad input."""


class DataError(StepgraphError):
    """A run's data does not fit the graph at runtime (e.g. ``update_state: true`` on a non-object output).

    ``code`` is the error name Step Functions sees when the executor raises it.
    """

    code = "stepgraph.DataError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReferenceResolutionError(DataError):
    """A ``{{ path }}`` reference names something the run does not have (yet): a missing field or node result."""

    code = "stepgraph.ReferenceError"


def loc_text(parts: Iterable[Any]) -> str:
    """``("nodes", 2, "params")`` -> ``"nodes[2].params"``: how every error detail names its location."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def detail_at(loc: Sequence[Any], message: str, spec: Any) -> dict[str, Any]:
    """An error detail for location ``loc`` of ``spec`` (as sent), naming the node or edge it falls in:
    ``{"loc", "message"}`` plus ``node`` (its id) or ``edge`` (``from->to``) when the spec has them there."""
    detail: dict[str, Any] = {"loc": loc_text(loc), "message": message}
    if len(loc) < 2 or loc[0] not in ("nodes", "edges") or not isinstance(loc[1], int) or not isinstance(spec, Mapping):
        return detail
    items = spec.get(loc[0])
    item = items[loc[1]] if isinstance(items, list) and 0 <= loc[1] < len(items) else None
    if not isinstance(item, Mapping):
        return detail
    if loc[0] == "nodes" and isinstance(item.get("id"), str):
        detail["node"] = item["id"]
    elif loc[0] == "edges" and isinstance(item.get("from"), str) and isinstance(item.get("to"), str):
        detail["edge"] = f"{item['from']}->{item['to']}"
    return detail
