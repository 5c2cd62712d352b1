"""The ``stepgraph`` parser and entry point: the options every command takes, the command groups, and the one
place errors become messages and exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from stepgraph_cli.client import DEFAULT_API, Api, make_client
from stepgraph_cli.commands import graphs, runs, schedules, tools
from stepgraph_cli.errors import EXIT_API, EXIT_INTERRUPTED, ApiError, CliError, Reported
from stepgraph_cli.output import Output, escape

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

GROUPS = (graphs.group, runs.group, schedules.group, tools.group)


def common_options() -> argparse.ArgumentParser:
    """The options of every command (given before or after the command's own)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api", default=argparse.SUPPRESS, help=f"API base URL (env STEPGRAPH_API, default {DEFAULT_API})"
    )
    common.add_argument(
        "--api-key", default=argparse.SUPPRESS, help="API key (env STEPGRAPH_API_KEY, default local-dev-key)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON (for scripts)"
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only the new id (graphs create, runs start without --wait)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="stepgraph",
        description="Create graphs of agents and tools, run them on Step Functions (or the local stack), watch runs.",
        epilog="Exit codes: 0 ok, 1 run failed or spec invalid, 2 usage, 3 API error or unreachable.",
        parents=[common],
    )
    names = ",".join(group.name for group in GROUPS)
    groups = parser.add_subparsers(dest="group", metavar=f"{{{names}}}", required=True)
    for group in GROUPS:
        group.add_to(groups, common)
    return parser


def main(argv: Sequence[str] | None = None, client: httpx.Client | None = None) -> int:
    """Run the CLI; ``client`` (an ``httpx.Client`` on the API, with the key) replaces ``--api`` in tests."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        out = Output(as_json=bool(getattr(args, "json", False)), quiet=bool(getattr(args, "quiet", False)))
    except CliError as error:
        sys.stderr.write(f"error {error.message}\n")
        return error.code
    own = client is None
    http = make_client(args) if client is None else client
    try:
        return int(args.func(Api(http), out, args))
    except ApiError as error:
        out.api_error(error)
        return EXIT_API
    except CliError as error:
        out.err.print(f"[bold red]error[/] {escape(error.message)}", soft_wrap=True)
        return error.code
    except Reported as reported:
        return reported.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if own:
            http.close()
