"""Error details the API returns, placed where they are: the spec file's ``file:line:col`` of each ``loc``, and a
caret under the column a condition or schedule expression goes wrong at."""

from __future__ import annotations

import json
from typing import Any


def json_positions(text: str) -> dict[str, int]:
    """Map each path of a JSON document (``nodes[2].params.url``) to the offset where its value starts."""
    decoder = json.JSONDecoder()
    positions: dict[str, int] = {}
    whitespace = " \t\n\r"

    def skip(i: int) -> int:
        while i < len(text) and text[i] in whitespace:
            i += 1
        return i

    def value(i: int, path: str) -> int:
        i = skip(i)
        positions[path] = i
        char = text[i]
        if char == "{":
            i = skip(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                key, i = json.decoder.scanstring(text, skip(i) + 1)  # type: ignore[attr-defined]
                i = skip(i) + 1  # past ':'
                i = skip(value(i, f"{path}.{key}" if path else key))
                if text[i] == "}":
                    return i + 1
                i += 1  # past ','
        if char == "[":
            i = skip(i + 1)
            if text[i] == "]":
                return i + 1
            index = 0
            while True:
                i = skip(value(i, f"{path}[{index}]"))
                index += 1
                if text[i] == "]":
                    return i + 1
                i += 1
        _, end = decoder.raw_decode(text, i)
        return int(end)

    try:
        value(0, "")
    except (IndexError, ValueError):
        return positions
    return positions


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of an offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def resolve_loc(document: Any, loc: str) -> Any:
    """The value at a ``loc`` such as ``edges[0].when`` in a parsed document, or None."""
    current = document
    for part in loc.replace("[", ".[").split("."):
        if not part:
            continue
        try:
            current = current[int(part[1:-1])] if part.startswith("[") else current[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return current


def nearest_loc(loc: str, positions: dict[str, int]) -> str | None:
    """``loc`` if the file has it, else its nearest enclosing value (a missing field points at its object)."""
    while loc not in positions:
        if not loc:
            return None
        cut = max(loc.rfind("."), loc.rfind("["))
        loc = loc[:cut] if cut > 0 else ""
    return loc


def pointed(source: str, position: dict[str, Any], indent: str) -> list[str]:
    """``source`` and a caret under the 1-based ``col`` of ``position``."""
    return [f"{indent}{source}", indent + " " * (int(position.get("col") or 1) - 1) + "^"]


def format_details(details: list[Any], spec_path: str | None = None, spec_text: str | None = None) -> list[str]:
    """One line per error detail naming where it is: ``file:line:col: loc (node x): message``.

    A condition error's ``position`` (1-based line and col within the ``when`` text) is added to the file position
    of that string, and the condition is shown with a caret under the column.
    """
    positions = json_positions(spec_text) if spec_text else {}
    spec = None
    if spec_text:
        try:
            spec = json.loads(spec_text)
        except ValueError:
            spec = None
    lines: list[str] = []
    for detail in details:
        if not isinstance(detail, dict):
            lines.append(str(detail))
            continue
        loc = str(detail.get("loc") or "")
        where: list[str] = []
        position = detail.get("position") if isinstance(detail.get("position"), dict) else None
        found = nearest_loc(loc, positions)
        if spec_path and found is not None and spec_text is not None:
            line, col = line_col(spec_text, positions[found])
            if position and found == loc and isinstance(resolve_loc(spec, loc), str) and position.get("line", 1) == 1:
                col += int(position.get("col") or 1)  # the opening quote is at col; position col is 1-based
            where.append(f"{spec_path}:{line}:{col}:")
        if loc:
            where.append(loc)
        if detail.get("node"):
            where.append(f"(node {detail['node']})")
        if detail.get("edge"):
            where.append(f"(edge {detail['edge']})")
        if position and not spec_path:
            where.append(f"(line {position.get('line')}, col {position.get('col')})")
        message = str(detail.get("message") or detail.get("msg") or "")
        lines.append(f"{' '.join(where)}: {message}" if where else message)
        source = resolve_loc(spec, loc) if spec is not None and loc else None
        if position and isinstance(source, str) and "\n" not in source:
            lines += pointed(source, position, "    ")
    return lines


def format_expression_details(details: list[Any], expression: str) -> list[str]:
    """The details of a refused schedule: a fault in the ``expression`` is shown with a caret under its column."""
    lines: list[str] = []
    for detail in details:
        position = detail.get("position") if isinstance(detail, dict) else None
        if isinstance(position, dict) and detail.get("loc") == "expression":
            field = f"{detail['field']}, " if detail.get("field") else ""
            lines.append(f"expression ({field}col {position.get('col')}): {detail['message']}")
            lines += pointed(expression, position, "  ")
        else:
            lines += format_details([detail])
    return lines
