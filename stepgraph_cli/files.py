"""Local files and inline JSON the commands read: a parse error names the file, line and column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stepgraph_cli.errors import CliError


def read_json_file(path: str) -> tuple[Any, str]:
    """The parsed JSON of a file and its text; a parse error names ``file:line:col``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")  # an editor's byte order mark is not part of the JSON
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    except RecursionError:
        raise CliError(f"{path}: JSON nested deeper than Python's parser goes") from None


def parse_input(value: str | None) -> Any:
    """``--input``: inline JSON, or ``@file`` holding JSON."""
    if value is None:
        return {}
    if value.startswith("@"):
        return read_json_file(value[1:])[0]
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"--input is not valid JSON (column {exc.colno}): {exc.msg}. Use '@file.json' for a file."
        ) from exc
    except RecursionError:
        raise CliError("--input is JSON nested deeper than Python's parser goes") from None
