"""``stepgraph runs``: start, watch, show, list, answer, cancel and resume runs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statemachine.status import RUN_TERMINAL, NodeStatus, RunStatus
from stepgraph_cli.client import items_of
from stepgraph_cli.command import Group, arg, one_of
from stepgraph_cli.commands.graphs import send_spec
from stepgraph_cli.errors import EXIT_OK, CliError
from stepgraph_cli.files import parse_input
from stepgraph_cli.live import WAIT, WATCH_OPTIONS, finish_watch
from stepgraph_cli.output import escape, table
from stepgraph_cli.view import RunView, print_run_result, run_exit_code, styled

if TYPE_CHECKING:
    import argparse

    from stepgraph_cli.client import Api
    from stepgraph_cli.output import Output

group = Group("runs", "start, watch, list, answer, cancel and resume runs")


def resolve_graph(api: Api, out: Output, graph: str) -> str:
    """A graph id as given, or the id of a graph created from a spec file given instead."""
    if not Path(graph).is_file():
        return graph
    created, _, _ = send_spec(api, out, "POST", "/graphs", graph)
    if not out.quiet:
        out.err.print(f"[green]created[/] {created['graph_id']} from {escape(graph)}")
    return str(created["graph_id"])


def started(
    api: Api, out: Output, args: argparse.Namespace, run: dict[str, Any], verb: str, status: str, note: str = ""
) -> int:
    """A run just started or resumed: its id, ``note`` and ``status`` and how to follow it; with ``--wait``, its
    live view and result."""
    run_id = run["run_id"]
    if args.wait:
        if not out.as_json:
            out.out.print(f"[green]{verb}[/] {run_id}" + (f" ({note})" if note else ""))
        return finish_watch(api, out, run_id, args)
    if not out.for_scripts(run, run_id):
        out.out.print(f"[green]{verb}[/] {run_id} ({f'{note}, ' if note else ''}{status})")
        if run.get("console_url"):
            out.out.print(f"  console {run['console_url']}")
        out.out.print(f"  watch:  stepgraph runs watch {run_id}")
    return EXIT_OK


@group.command(
    "start",
    "start a run of a graph id (or of a spec file, created first)",
    arg("graph"),
    arg("--input", help="the run's input: JSON, or @file.json"),
    WAIT,
    arg("--idempotency-key", help="retries with the same key start one run"),
    *WATCH_OPTIONS,
)
def start(api: Api, out: Output, args: argparse.Namespace) -> int:
    payload = parse_input(args.input)
    graph_id = resolve_graph(api, out, args.graph)
    # A key of its own when none is given: the client's retries then start one run.
    headers = {"Idempotency-Key": args.idempotency_key or f"cli-{uuid.uuid4()}"}
    run = api.post(f"/graphs/{graph_id}/runs", json={"input": payload}, headers=headers)
    return started(api, out, args, run, "started", run.get("status", RunStatus.RUNNING))


@group.command("watch", "live view of a run until it ends; exit 1 unless it SUCCEEDED", arg("run"), *WATCH_OPTIONS)
def watch(api: Api, out: Output, args: argparse.Namespace) -> int:
    return finish_watch(api, out, args.run, args)


@group.command("show", "a run's status, nodes and outputs, once", arg("run"))
def show(api: Api, out: Output, args: argparse.Namespace) -> int:
    run = api.get(f"/runs/{args.run}")
    if not out.for_scripts(run):
        view = RunView(args.run, {})
        view.update(run)
        out.out.print(view.table())
        waits = view.waits()
        if waits is not None:
            out.out.print(waits)
        print_run_result(out, run)
    return EXIT_OK if run.get("status") not in RUN_TERMINAL else run_exit_code(run)


@group.command(
    "list",
    "list runs",
    arg("--graph", help="only runs of this graph id"),
    arg(
        "--status",
        choices=sorted({*RUN_TERMINAL, RunStatus.RUNNING.value, NodeStatus.WAITING.value}),
        help="a run status, or WAITING: running runs with a step waiting for a person",
    ),
    arg("--limit", type=int),
)
def list_runs(api: Api, out: Output, args: argparse.Namespace) -> int:
    params = {
        key: value for key, value in (("graph_id", args.graph), ("status", args.status), ("limit", args.limit)) if value
    }
    body = api.get("/runs", params=params)
    if out.for_scripts(body):
        return EXIT_OK
    runs = items_of(body, "runs")
    shown = table("run_id", "graph_id", "version", "status", "progress", "started_at", "finished_at")
    for run in runs:
        progress = run.get("progress") or {}
        shown.add_row(
            str(run.get("run_id", "")),
            str(run.get("graph_id", "")),
            str(run.get("version", "")),
            styled(str(run.get("status", ""))),
            f"{progress.get('done', '')}/{progress.get('total', '')}" if progress else "",
            str(run.get("started_at") or ""),
            str(run.get("finished_at") or ""),
        )
    out.out.print(shown if runs else "[dim]no runs[/]")
    return EXIT_OK


@group.command(
    "respond",
    "answer a step waiting for a person (human.approval, human.input)",
    arg("run"),
    arg("node"),
    one_of(
        arg("--approve", action="store_true", help="approve (human.approval)"),
        arg("--reject", action="store_true", help="reject (human.approval)"),
        arg("--input", help="the answer (human.input): JSON, or @file.json"),
        required=True,
    ),
    arg("--comment", help="a comment with --approve or --reject"),
)
def respond(api: Api, out: Output, args: argparse.Namespace) -> int:
    if args.input is not None:
        if args.comment is not None:
            raise CliError("--comment goes with --approve or --reject (a human.approval step), not with --input")
        body: dict[str, Any] = {"input": parse_input(args.input)}
    else:
        body = {"approved": bool(args.approve)}
        if args.comment is not None:
            body["comment"] = args.comment
    answered = api.post(f"/runs/{args.run}/nodes/{args.node}/respond", json=body)
    if not out.for_scripts(answered):
        output = answered.get("output") if isinstance(answered, dict) else None
        verdict = "answered"
        if isinstance(output, dict) and "approved" in output:
            verdict = "approved" if output["approved"] else "rejected"
        out.out.print(f"[green]{verdict}[/] {escape(args.node)} of {args.run}; the run goes on")
        out.out.print(f"  watch:  stepgraph runs watch {args.run}")
    return EXIT_OK


@group.command("cancel", "stop a running run", arg("run"))
def cancel(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.post(f"/runs/{args.run}/cancel")
    if not out.for_scripts(body):
        status = (body or {}).get("status", RunStatus.CANCELLED) if isinstance(body, dict) else RunStatus.CANCELLED
        out.out.print(f"[magenta]cancel requested[/] {args.run} ({status})")
    return EXIT_OK


@group.command(
    "resume",
    "resume a FAILED, CANCELLED or TIMED_OUT run (succeeded nodes are kept)",
    arg("run"),
    WAIT,
    *WATCH_OPTIONS,
)
def resume(api: Api, out: Output, args: argparse.Namespace) -> int:
    run = api.post(f"/runs/{args.run}/resume")
    return started(api, out, args, run, "resumed", RunStatus.RUNNING, f"resume {run.get('resumes')}")
