"""The JSON stepgraph takes in: strict parsing and the limits every value from a caller fits.

A value that passes can be stored, passed through Step Functions and read back whole: it is nested at most
``MAX_JSON_DEPTH`` deep, its numbers are finite 64-bit floats or integers of at most ``MAX_INTEGER_DIGITS``
digits, and its strings are valid Unicode (no lone surrogates). ``NaN`` and ``Infinity`` are not JSON and
are refused. Parsing and checking are linear in the size of the text.
"""

from __future__ import annotations

import json
import math
from typing import Any

from statemachine.errors import JsonInputError, LimitError

MAX_JSON_DEPTH = 64
"""Objects and lists nest at most this deep (the top-level value is depth 1)."""
MAX_OUTPUT_DEPTH = 240
"""A node's output nests at most this deep: ``GET /runs/{id}`` serves it three levels down in the run document,
whose serializer (pydantic's) gives up at 255 levels."""
MAX_INTEGER_DIGITS = 100
"""Integers have at most this many digits; other numbers must fit a 64-bit float."""
_TOO_MANY_DIGITS = 10**MAX_INTEGER_DIGITS


def _constant(name: str) -> Any:
    raise JsonInputError(
        f"the request body is not valid JSON: {name} is not a JSON number",
        [{"loc": "body", "message": f"{name} is not JSON; send a number or null"}],
    )


def _integer(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INTEGER_DIGITS:
        raise LimitError(
            f"an integer of {digits} digits; integers have at most {MAX_INTEGER_DIGITS} digits",
            [{"loc": "body", "message": f"integer of {digits} digits (limit: {MAX_INTEGER_DIGITS} digits)"}],
        )
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise LimitError(
            f"the number {shown} is out of range; numbers must fit a 64-bit float (about 1.8e308)",
            [{"loc": "body", "message": f"number {shown} out of range of a 64-bit float"}],
        )
    return value


def loads(text: str | bytes) -> Any:
    """Parse JSON text strictly; :class:`JsonInputError` (400) or :class:`LimitError` (422) says what is wrong."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_float)
    except RecursionError:
        raise _too_deep("body") from None
    except json.JSONDecodeError as exc:
        raise JsonInputError(
            f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            [{"loc": "body", "message": exc.msg, "position": {"line": exc.lineno, "col": exc.colno}}],
        ) from None
    except UnicodeDecodeError as exc:
        raise JsonInputError(
            "the request body is not UTF-8", [{"loc": "body", "message": f"byte {exc.start} is not UTF-8"}]
        ) from None
    check(value)
    return value


MAX_ERROR_MESSAGE = 4000
"""An error message is recorded with at most this many characters (a tool or function may raise a whole
response body; the node's item, its event and the run's error each hold the message)."""


def valid_text(text: str, limit: int | None = None) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (and a split pair joined), cut to ``limit``
    characters when given: text from outside (an error message a function raised, Step Functions' cause)
    that can then be stored in DynamoDB and served."""
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... (cut: {len(text)} characters in all)"
    if text.isascii():
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _too_deep(loc: str, limit: int = MAX_JSON_DEPTH) -> LimitError:
    loc = shortened(loc)
    return LimitError(
        f"JSON nested deeper than {limit} levels at {loc}; objects and lists nest at most {limit} deep",
        [{"loc": loc, "message": f"nested deeper than {limit} levels (limit: JSON depth)"}],
    )


def _where(loc: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{loc}[{key}]"
    return f"{loc}.{key}" if loc else key


_Loc = str | tuple[Any, str | int]
"""Where a value sits: the root's text, or ``(parent's _Loc, key)``; spelled out only for an error."""


def _loc_text(loc: _Loc) -> str:
    keys: list[str | int] = []
    while isinstance(loc, tuple):
        loc, key = loc
        keys.append(key)
    text = loc
    for key in reversed(keys):
        text = _where(text, key)
    return text


def shortened(text: str) -> str:
    """``text`` short enough for a message, its middle left out past 120 characters (deep values have long
    locations; an expression may be thousands of characters)."""
    return text if len(text) <= 120 else f"{text[:60]}...{text[-57:]}"


def _check_text(text: str, loc: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        shown = shortened(loc)
        raise JsonInputError(
            f"a lone surrogate \\u{code:04x} at {shown or 'the top level'}: strings must be valid Unicode",
            [{"loc": shown, "message": f"lone surrogate \\u{code:04x} (pair it, or send the character itself)"}],
        ) from None


def check(value: Any, root: str = "", *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise unless ``value`` (parsed JSON, or a Python value about to become JSON) is within the limits,
    nested at most ``max_depth`` deep.

    One iterative pass: no recursion, whatever the depth; a value's location is spelled out only for an error.
    """
    stack: list[tuple[Any, _Loc, int]] = [(value, root, 1)]
    while stack:
        current, where, depth = stack.pop()
        if isinstance(current, str):
            if not current.isascii():
                _check_text(current, _loc_text(where))
        elif isinstance(current, bool) or current is None:
            continue
        elif isinstance(current, int):
            if abs(current) >= _TOO_MANY_DIGITS:
                loc = _loc_text(where)
                raise LimitError(
                    f"an integer at {loc or 'the top level'} has more than {MAX_INTEGER_DIGITS} digits",
                    [{"loc": loc, "message": f"integer over {MAX_INTEGER_DIGITS} digits"}],
                )
        elif isinstance(current, float):
            if not math.isfinite(current):
                loc = _loc_text(where)
                raise LimitError(
                    f"the number {current} at {loc or 'the top level'} is not finite; numbers must be finite",
                    [{"loc": loc, "message": "NaN and infinities are not JSON numbers"}],
                )
        elif isinstance(current, dict | list):
            if depth > max_depth:
                raise _too_deep(_loc_text(where) or "the top level", max_depth)
            if isinstance(current, dict):
                for key, item in current.items():
                    name = str(key)
                    if not name.isascii():
                        loc = _loc_text(where)
                        _check_text(name, f"a key in {shortened(loc)}" if loc else "a key")
                    stack.append((item, (where, name), depth + 1))
            else:
                stack.extend((item, (where, i), depth + 1) for i, item in enumerate(current))
