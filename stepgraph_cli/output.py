"""Where the CLI prints: rich consoles for people, or for scripts the API's JSON (``--json``) or only the new id
(``--quiet``). Every command makes that choice through ``Output.for_scripts``."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from stepgraph_cli.errors import CliError
from stepgraph_cli.spec_errors import format_details

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from stepgraph_cli.errors import ApiError


class Output:
    """Where the CLI prints: rich consoles for people, plain JSON with ``--json`` for scripts."""

    def __init__(self, as_json: bool, quiet: bool = False) -> None:
        try:
            from rich.console import Console
        except ModuleNotFoundError as exc:  # installed without its extra: say how to get it, not a traceback
            raise CliError(f"the stepgraph command needs {exc.name}: pip install 'stepgraph[cli]'") from exc

        self.as_json = as_json
        self.quiet = quiet
        # Piped output (scripts, files, tests) is not cut at 80 columns: ids must stay whole.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
        self.out: Console = Console(highlight=False, soft_wrap=True, width=width)
        self.err: Console = Console(stderr=True, highlight=False, soft_wrap=True, width=width)

    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")

    def for_scripts(self, body: Any, identifier: Any = None) -> bool:
        """Print ``body`` as JSON (``--json``), or only ``identifier`` (``--quiet``, for commands that make
        something new); False: nothing was printed, the command prints for people."""
        if self.as_json:
            self.json(body)
            return True
        if self.quiet and identifier is not None:
            sys.stdout.write(f"{identifier}\n")
            return True
        return False

    def api_error(
        self,
        error: ApiError,
        spec_path: str | None = None,
        spec_text: str | None = None,
        *,
        lines: list[str] | None = None,
    ) -> None:
        """The API's error on stderr, then its details placed in the spec file (or as ``lines`` already placed)."""
        self.err.print(f"[bold red]error[/] {error.code} (HTTP {error.status}): {escape(error.message)}")
        self.lines(format_details(error.details, spec_path, spec_text) if lines is None else lines)

    def details(self, details: list[Any], spec_path: str | None, spec_text: str | None) -> None:
        self.lines(format_details(details, spec_path, spec_text))

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            self.err.print(f"  {escape(line)}", soft_wrap=True)


def escape(text: str) -> str:
    """``text`` with rich markup escaped, to print values from the API or the user as they are."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def abbreviate(value: Any, text: int = 160, items: int = 10) -> Any:
    """``value`` with long strings and lists cut, so a terminal shows the shape of large outputs."""
    if isinstance(value, str) and len(value) > text:
        return f"{value[:text]}… ({len(value)} characters)"
    if isinstance(value, list):
        kept = [abbreviate(v, text, items) for v in value[:items]]
        return [*kept, f"… {len(value) - items} more"] if len(value) > items else kept
    if isinstance(value, dict):
        return {k: abbreviate(v, text, items) for k, v in value.items()}
    return value


def table(*columns: str, **options: Any) -> Table:
    """A table without borders and with a bold header, for listings: these ``columns`` never wrap (ids stay
    whole); add others to it as they need."""
    from rich.table import Table

    shown = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        shown.add_column(column, no_wrap=True, **options)
    return shown
