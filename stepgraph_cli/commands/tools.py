"""``stepgraph tools``: the built-in and registered tools; register your own; the README's tool table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepgraph_cli.client import items_of
from stepgraph_cli.command import Group, arg
from stepgraph_cli.errors import EXIT_API, EXIT_FAILED, EXIT_OK, ApiError, CliError, Reported
from stepgraph_cli.files import read_json_file
from stepgraph_cli.output import escape, table
from stepgraph_cli.tool_table import TOOLS_BEGIN, TOOLS_END, replace_tools_block, tools_markdown

if TYPE_CHECKING:
    import argparse

    from stepgraph_cli.client import Api
    from stepgraph_cli.output import Output

group = Group("tools", "built-in and registered tools")


@group.command("list", "tool names, kinds, versions and descriptions")
def list_tools(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.get("/tools")
    if out.for_scripts(body):
        return EXIT_OK
    shown = table("tool", "kind")
    shown.add_column("version", justify="right")
    shown.add_column("description")
    for tool in items_of(body, "tools"):
        version = str(tool["version"]) if tool.get("kind") == "registered" and tool.get("version") else ""
        shown.add_row(
            str(tool.get("name", "")),
            str(tool.get("kind", "builtin")),
            version,
            escape(str(tool.get("description", ""))),
        )
    out.out.print(shown)
    return EXIT_OK


def _tool_body(args: argparse.Namespace) -> dict[str, Any]:
    """The registration body from the command line: the source file, the schema file, the settings."""
    with open(args.file, encoding="utf-8") as handle:
        source = handle.read()
    body: dict[str, Any] = {"name": args.name, "source": source, "description": args.description or ""}
    if args.schema:
        body["params_schema"], _ = read_json_file(args.schema)
    if args.timeout is not None:
        body["timeout_seconds"] = args.timeout
    return body


TOOL_SOURCE = (
    arg("file", help="Python source defining run(params) -> JSON value"),
    arg("--name", required=True, help="the tool's name, like acme.slugify"),
    arg("--schema", metavar="FILE", help="JSON Schema file of the params (default: any object)"),
    arg("--description", help="what the tool does"),
    arg("--timeout", type=int, metavar="SECONDS", help="the tool's timeout (default 30)"),
)


@group.command(
    "register", "register a Python file defining run(params) as a tool (its own sandboxed function)", *TOOL_SOURCE
)
def register(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = _tool_body(args)
    try:
        if args.command == "update":
            done = api.request("PUT", f"/tools/{args.name}", json=body)
        else:
            done = api.post("/tools", json=body)
    except ApiError as error:
        out.api_error(error, args.file, None)
        raise Reported(EXIT_FAILED if error.status in (409, 413, 422) else EXIT_API) from error
    if not out.for_scripts(done, f"{done['name']} {done['version']}"):
        verb = "published" if args.command == "update" else "registered"
        out.out.print(f"[green]{verb}[/] {done['name']} version {done['version']} (its own sandboxed function)")
        out.out.print(f'  use it in a node: {{"id": "...", "tool": "{done["name"]}", "params": {{...}}}}')
    return EXIT_OK


group.command("update", "publish a new version of a registered tool from a Python file", *TOOL_SOURCE)(register)


@group.command("delete", "delete a registered tool (refused while graphs use it)", arg("name"))
def delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    try:
        body = api.request("DELETE", f"/tools/{args.name}")
    except ApiError as error:
        out.api_error(error)
        raise Reported(EXIT_FAILED if error.status == 409 else EXIT_API) from error
    if not out.for_scripts(body):
        out.out.print(f"[magenta]deleted[/] {args.name}")
    return EXIT_OK


@group.command(
    "markdown",
    "the tool reference as Markdown, from the local registry",
    arg("--write", metavar="FILE", help="replace the generated block in FILE (e.g. README.md)"),
)
def markdown(api: Api | None, out: Output, args: argparse.Namespace) -> int:
    generated = tools_markdown()
    if not args.write:
        sys.stdout.write(generated)
        return EXIT_OK
    path = Path(args.write)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {args.write}: {exc.strerror or exc}") from exc
    updated = replace_tools_block(text, generated)
    if updated is None:
        raise CliError(f"{args.write} has no '{TOOLS_BEGIN}' ... '{TOOLS_END}' block")
    path.write_text(updated, encoding="utf-8")
    out.err.print(f"[green]updated[/] the tool table in {escape(args.write)}")
    return EXIT_OK
