"""``stepgraph graphs``: create, validate, list, publish, delete, show and draw graphs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepgraph_cli.client import items_of, spec_of
from stepgraph_cli.command import Group, arg, one_of
from stepgraph_cli.errors import EXIT_API, EXIT_FAILED, EXIT_OK, ApiError, CliError, Reported
from stepgraph_cli.files import read_json_file
from stepgraph_cli.output import escape, table

if TYPE_CHECKING:
    import argparse

    from stepgraph_cli.client import Api
    from stepgraph_cli.output import Output

group = Group("graphs", "create, validate, list and draw graphs")


REFUSED_SPEC = frozenset({413, 422})
"""Statuses by which the API refuses the spec itself (too large, invalid) rather than failing."""


def send_spec(
    api: Api, out: Output, method: str, path: str, file: str, refused: frozenset[int] = frozenset()
) -> tuple[Any, Any, str]:
    """The API's answer to the spec in ``file``, the spec and its text. A refusal is shown at its positions in
    the file; the command then exits 1 when its status is ``refused`` (the spec is at fault), else 3."""
    spec, text = read_json_file(file)
    try:
        return api.request(method, path, json=spec), spec, text
    except ApiError as error:
        out.api_error(error, file, text)
        raise Reported(EXIT_FAILED if error.status in refused else EXIT_API) from error


def plan_line(plan: dict[str, Any]) -> str:
    """One line of a graph's plan: size, transitions, calls, worst-case history and cost of a run."""

    def span(key: str) -> str:
        low, high = plan[key]["min"], plan[key]["max"]
        return f"{low:,}" if low == high else f"{low:,}-{high:,}"

    cost = plan["estimated_cost_usd"]
    return (
        f"{plan['states']} states, {plan['definition_bytes']:,} bytes; a run: {span('transitions')} transitions, "
        f"{span('lambda_invocations')} Lambda calls, at most {plan['history_events_max']:,} history events, "
        f"about ${cost['min']:g}-${cost['max']:g}"
    )


@group.command("create", "validate, compile and create a graph from a spec file", arg("file"))
def create(api: Api, out: Output, args: argparse.Namespace) -> int:
    created, spec, _ = send_spec(api, out, "POST", "/graphs", args.file)
    if out.for_scripts(created, created["graph_id"]):
        return EXIT_OK
    out.out.print(
        f"[green]created[/] {created['graph_id']} version {created.get('version', 1)}  {spec.get('name', '')}"
    )
    if created.get("state_machine_arn"):
        out.out.print(f"  state machine {created['state_machine_arn']}")
    if created.get("console_url"):
        out.out.print(f"  console       {created['console_url']}")
    if created.get("plan"):
        out.out.print(f"  plan          {plan_line(created['plan'])}", markup=False)
    out.out.print(f"  run it:       stepgraph runs start {created['graph_id']} --input '{{...}}' --wait")
    return EXIT_OK


@group.command(
    "validate",
    "dry run: errors with positions, or the Mermaid diagram",
    arg("file"),
    arg("--definition", action="store_true", help="print the compiled ASL instead of the diagram"),
)
def validate(api: Api, out: Output, args: argparse.Namespace) -> int:
    result, spec, text = send_spec(api, out, "POST", "/graphs/validate", args.file, REFUSED_SPEC)
    if out.for_scripts(result):
        return EXIT_OK if result.get("valid") else EXIT_FAILED
    if not result.get("valid"):
        errors = result.get("errors") or []
        out.err.print(f"[bold red]invalid[/] {escape(args.file)}: {len(errors)} error{'s' if len(errors) != 1 else ''}")
        out.details(errors, args.file, text)
        if result.get("plan"):
            out.err.print(f"plan: {plan_line(result['plan'])}", markup=False)
        return EXIT_FAILED
    out.out.print(
        f"[green]valid[/] {escape(args.file)}: {len(spec.get('nodes', []))} nodes, {len(spec.get('edges', []))} edges"
    )
    if result.get("plan"):
        out.err.print(f"plan: {plan_line(result['plan'])}", markup=False)
    if args.definition:
        out.out.print(json.dumps(result.get("definition"), indent=2), markup=False)
    elif result.get("diagram"):
        out.out.print(result["diagram"], markup=False)
    return EXIT_OK


@group.command("list", "list graphs", arg("--limit", type=int))
def list_graphs(api: Api, out: Output, args: argparse.Namespace) -> int:
    params = {"limit": args.limit} if args.limit else {}
    body = api.get("/graphs", params=params)
    if out.for_scripts(body):
        return EXIT_OK
    graphs = items_of(body, "graphs")
    shown = table("graph_id", "name", "version", "created_at")
    for graph in graphs:
        version = graph.get("latest_version", graph.get("version", ""))
        shown.add_row(
            str(graph.get("graph_id", "")),
            escape(str(graph.get("name", ""))),
            str(version),
            str(graph.get("created_at", "")),
        )
    out.out.print(shown if graphs else "[dim]no graphs yet: stepgraph graphs create examples/echo-chain.json[/]")
    return EXIT_OK


@group.command("update", "publish a new version of a graph from a spec file", arg("graph"), arg("file"))
def update(api: Api, out: Output, args: argparse.Namespace) -> int:
    published, _, _ = send_spec(api, out, "PUT", f"/graphs/{args.graph}", args.file)
    if not out.for_scripts(published, published.get("version")):
        out.out.print(f"[green]published[/] {args.graph} version {published.get('version')}  (new runs use it)")
    return EXIT_OK


@group.command("delete", "delete a graph and its state machines", arg("graph"))
def delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.request("DELETE", f"/graphs/{args.graph}")
    if not out.for_scripts(body):
        out.out.print(f"[magenta]deleted[/] {args.graph}")
    return EXIT_OK


@group.command("show", "a graph's spec and versions", arg("graph"))
def show(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.get(f"/graphs/{args.graph}")
    if not out.for_scripts(body):
        out.out.print_json(data=body)
    return EXIT_OK


def diagram_of(api: Api, graph: str) -> tuple[str, dict[str, Any]]:
    """The Mermaid text and the spec of a graph id, or of a spec file (validated by the API, not created)."""
    if Path(graph).is_file():
        spec, _ = read_json_file(graph)
        result = api.post("/graphs/validate", json=spec)
        if not result.get("valid"):
            raise CliError(f"{graph} is not valid; run: stepgraph graphs validate {graph}", EXIT_FAILED)
        return str(result.get("diagram") or ""), spec
    body = api.get(f"/graphs/{graph}/diagram")
    if isinstance(body, dict):
        body = body.get("diagram") or ""
    return str(body), {}


@group.command(
    "diagram",
    "the Mermaid diagram of a graph id or spec file",
    arg("graph", help="a graph id, or a spec file (validated, not created)"),
    one_of(
        arg("--svg", metavar="FILE", help="write an SVG picture"),
        arg("--html", metavar="FILE", help="write a standalone HTML page"),
    ),
)
def diagram(api: Api, out: Output, args: argparse.Namespace) -> int:
    mermaid, spec = diagram_of(api, args.graph)
    if not (args.svg or args.html):
        sys.stdout.write(mermaid if mermaid.endswith("\n") else mermaid + "\n")
        return EXIT_OK
    from stepgraph_cli.page import graph_to_html, graph_to_svg

    spec = spec or spec_of(api.get(f"/graphs/{args.graph}"))
    if args.svg:
        Path(args.svg).write_text(graph_to_svg(spec), encoding="utf-8")
    else:
        Path(args.html).write_text(graph_to_html(spec, mermaid), encoding="utf-8")
    out.err.print(f"[green]wrote[/] {escape(args.svg or args.html)}")
    return EXIT_OK
