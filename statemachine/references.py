"""``{{ path }}`` references in params and ``foreach``: parsing, listing and runtime resolution.

A path starts with ``input``, ``state``, ``item`` or a node id, then ``.field`` and ``[n]`` parts.
A string that is exactly one reference is replaced by the value (any JSON type); references inside a
longer string are interpolated as text (strings as they are, other values as compact JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from statemachine.errors import ReferenceResolutionError

ROOTS = ("input", "state", "item")
MAX_PATH_PARTS = 64
"""A path has at most this many ``.field``/``[n]`` parts: no value it reads is deeper (the API's JSON depth limit)."""
MAX_PATH_CHARS = 1024
_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_PATH = re.compile(rf"^(?P<root>{_IDENT})(?P<rest>(?:\.{_IDENT}|\[\d+\])*)$")
_PART = re.compile(rf"\.(?P<field>{_IDENT})|\[(?P<index>\d+)\]")


class ReferenceSyntaxError(ValueError):
    """A ``{{ ... }}`` is malformed; ``offset`` is where in the string it starts."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Path:
    """A parsed path: ``root`` (input/state/item/node id) and its field/index parts."""

    root: str
    parts: tuple[str | int, ...] = ()

    @property
    def is_node(self) -> bool:
        """True when the path reads a node's output."""
        return self.root not in ROOTS

    @property
    def text(self) -> str:
        """The path as written: ``fetch.items[0].name``."""
        out = self.root
        for part in self.parts:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out

    def doc_parts(self) -> tuple[str | int, ...]:
        """Where the value sits in the run document: node outputs live under ``results``."""
        head: tuple[str | int, ...] = ("results", self.root) if self.is_node else (self.root,)
        return head + self.parts

    def jsonpath(self) -> str:
        """The JSONPath of the value in the run document, e.g. ``$.results.fetch.items[0]``."""
        return jsonpath(self.doc_parts())

    def __str__(self) -> str:
        return self.text


_SHORTHAND = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def jsonpath(parts: tuple[str | int, ...]) -> str:
    """A JSONPath reference path; names with punctuation (``my-node``) use bracket notation, as ASL requires."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _SHORTHAND.fullmatch(part):
            out += f".{part}"
        else:
            out += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def parse_path(text: str) -> Path:
    """Parse a bare path (``fetch.items[0]``); raises :class:`ReferenceSyntaxError`."""
    stripped = text.strip()
    if len(stripped) > MAX_PATH_CHARS:
        raise ReferenceSyntaxError(f"path of {len(stripped)} characters; a path has at most {MAX_PATH_CHARS}")
    match = _PATH.match(stripped)
    if not match:
        raise ReferenceSyntaxError(
            f"malformed path {stripped!r}: expected input, state, item or a node id, then .field or [n] parts"
        )
    parts: list[str | int] = []
    for part in _PART.finditer(match.group("rest")):
        parts.append(int(part.group("index")) if part.group("index") is not None else part.group("field"))
        if len(parts) > MAX_PATH_PARTS:
            raise ReferenceSyntaxError(
                f"path {stripped[:40]}... is more than {MAX_PATH_PARTS} parts deep; a path has at most {MAX_PATH_PARTS}"
            )
    return Path(match.group("root"), tuple(parts))


@dataclass(frozen=True)
class Template:
    """A parsed string: literal text and paths in order; ``whole`` when it is exactly one reference."""

    pieces: tuple[str | Path, ...]

    @property
    def whole(self) -> Path | None:
        """The path when the string is exactly ``{{ path }}`` (the value keeps its JSON type)."""
        if len(self.pieces) == 1 and isinstance(self.pieces[0], Path):
            return self.pieces[0]
        return None

    @property
    def paths(self) -> list[Path]:
        """Every path in the string."""
        return [p for p in self.pieces if isinstance(p, Path)]


def parse_template(text: str) -> Template:
    """Split a string into text and references; raises :class:`ReferenceSyntaxError` on a malformed one.

    One left-to-right pass (each ``{{`` is closed by the first ``}}`` after it), so time is linear in the text.
    """
    pieces: list[str | Path] = []
    pos = 0
    while (start := text.find("{{", pos)) != -1:
        end = text.find("}}", start + 2)
        if end == -1:
            raise ReferenceSyntaxError("unclosed '{{': a reference ends with '}}'", start)
        if start > pos:
            pieces.append(text[pos:start])
        try:
            pieces.append(parse_path(text[start + 2 : end]))
        except ReferenceSyntaxError as exc:
            raise ReferenceSyntaxError(exc.message, start) from None
        pos = end + 2
    if pos < len(text):
        pieces.append(text[pos:])
    return Template(tuple(pieces))


def has_reference(text: str) -> bool:
    """True when the string contains ``{{``."""
    return "{{" in text


def iter_references(value: Any, loc: str = "") -> Iterator[tuple[str, str, Template]]:
    """Yield ``(loc, string, template)`` for every string holding a reference, anywhere in a JSON value.

    ``loc`` is the location of the string, e.g. ``params.url`` or ``params.items[2]``; malformed
    references raise :class:`ReferenceSyntaxError` (the caller adds the location).
    """
    if isinstance(value, str):
        if has_reference(value):
            yield loc, value, parse_template(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_references(item, f"{loc}.{key}" if loc else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_references(item, f"{loc}[{index}]")


def referenced_nodes(value: Any) -> set[str]:
    """The node ids a JSON value's references read (for validation and ordering)."""
    return {path.root for _, _, template in iter_references(value) for path in template.paths if path.is_node}


def lookup(path: Path, scope: Mapping[str, Any]) -> Any:
    """The value at ``path`` in ``scope`` (keys ``input``, ``state``, ``results``, ``item``).

    Raises :class:`ReferenceResolutionError` saying which part is missing.
    """
    if path.is_node:
        results = scope.get("results") or {}
        if path.root not in results:
            raise ReferenceResolutionError(
                f"{{{{ {path.text} }}}}: node {path.root!r} has no result (it was skipped or has not run)"
            )
        current: Any = results[path.root]
    else:
        if path.root not in scope:
            where = "inside foreach" if path.root == "item" else "in this run"
            raise ReferenceResolutionError(f"{{{{ {path.text} }}}}: {path.root!r} is not available {where}")
        current = scope[path.root]
    walked = path.root
    for part in path.parts:
        if isinstance(part, int):
            if not isinstance(current, list) or part >= len(current):
                size = f"a list of {len(current)}" if isinstance(current, list) else type_name(current)
                raise ReferenceResolutionError(f"{{{{ {path.text} }}}}: no index [{part}] in {walked} ({size})")
            current = current[part]
            walked += f"[{part}]"
        else:
            if not isinstance(current, Mapping) or part not in current:
                has = (
                    f"fields: {', '.join(sorted(map(str, current))) or 'none'}"
                    if isinstance(current, Mapping)
                    else (type_name(current))
                )
                raise ReferenceResolutionError(f"{{{{ {path.text} }}}}: no field {part!r} in {walked} ({has})")
            current = current[part]
            walked += f".{part}"
    return current


def type_name(value: Any) -> str:
    """A JSON type name for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def resolve(template: Any, scope: Mapping[str, Any]) -> Any:
    """Replace every reference in a JSON value (params, a foreach string) with values from ``scope``.

    ``scope`` has ``input``, ``state``, ``results`` and, inside ``foreach``, ``item``. A whole-string
    reference keeps the value's JSON type; interpolated ones become text. Missing values raise
    :class:`ReferenceResolutionError`; malformed ones :class:`ReferenceSyntaxError`.
    """
    if isinstance(template, str):
        if not has_reference(template):
            return template
        parsed = parse_template(template)
        whole = parsed.whole
        if whole is not None:
            return lookup(whole, scope)
        return "".join(p if isinstance(p, str) else _as_text(lookup(p, scope)) for p in parsed.pieces)
    if isinstance(template, Mapping):
        return {key: resolve(value, scope) for key, value in template.items()}
    if isinstance(template, list):
        return [resolve(value, scope) for value in template]
    return template


def get_field(value: Any, dotted: str) -> Any:
    """A dotted path (``a.b[0]``) inside a value; ``""`` or ``"."`` is the value itself (update_state, edge maps)."""
    if dotted in ("", "."):
        return value
    path = parse_path(f"_.{dotted}" if not dotted.startswith("[") else f"_{dotted}")
    return lookup(Path("item", path.parts), {"item": value})
