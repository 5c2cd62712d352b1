"""JMESPath helpers shared by ``json.pick`` and ``transform``; ``jmespath`` is imported on first use only."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from functions.errors import ToolError
from statemachine.jsonlimits import shortened


class ExpressionError(ToolError):
    """A JMESPath expression did not parse or failed on the data (e.g. a function given the wrong type)."""

    code = "ExpressionError"


@lru_cache(maxsize=256)
def _compiled(expression: str) -> Any:
    import jmespath

    return jmespath.compile(expression)


def check_expression(expression: str) -> str:
    """Pydantic validator body: the expression must parse (a ``{{ reference }}`` is checked once resolved)."""
    if "{{" in expression:
        return expression
    from jmespath.exceptions import JMESPathError

    try:
        _compiled(expression)
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {shortened(expression)!r}: {_first_line(exc)}") from None
    except RecursionError:  # jmespath parses recursively: "((((..." thousands deep
        raise ValueError(f"JMESPath expression {shortened(expression)!r} {_TOO_DEEP}") from None
    return expression


def search(expression: str, data: Any) -> Any:
    """Evaluate ``expression`` over ``data``; :class:`ExpressionError` on a parse or evaluation error."""
    from jmespath.exceptions import JMESPathError

    try:
        return _compiled(expression).search(data)
    except JMESPathError as exc:
        raise ExpressionError(f"JMESPath {shortened(expression)!r} failed: {_first_line(exc)}") from None
    except RecursionError:
        raise ExpressionError(f"JMESPath {shortened(expression)!r} {_TOO_DEEP}") from None


_TOO_DEEP = "nests too deeply to parse or evaluate (thousands of levels)"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
