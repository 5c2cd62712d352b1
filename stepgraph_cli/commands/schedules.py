"""``stepgraph schedules``: start a graph's runs on a timetable (EventBridge Scheduler expressions)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from stepgraph_cli.client import items_of
from stepgraph_cli.command import Group, arg
from stepgraph_cli.errors import EXIT_API, EXIT_OK, ApiError, Reported
from stepgraph_cli.files import parse_input
from stepgraph_cli.output import abbreviate, escape, table
from stepgraph_cli.spec_errors import format_expression_details

if TYPE_CHECKING:
    import argparse

    from stepgraph_cli.client import Api
    from stepgraph_cli.output import Output

group = Group("schedules", "start a graph's runs on a timetable")


@group.command(
    "create",
    "run a graph on rate(...), cron(...) or at(...) (EventBridge Scheduler syntax)",
    arg("graph"),
    arg("--expression", required=True, help="e.g. 'rate(5 minutes)', 'cron(0 9 ? * MON-FRI *)'"),
    arg("--input", help="the input of every run it starts: JSON, or @file.json"),
    arg("--timezone", default="UTC", help="IANA time zone the expression is read in (default UTC)"),
)
def create(api: Api, out: Output, args: argparse.Namespace) -> int:
    payload = parse_input(args.input)
    body = {"expression": args.expression, "input": payload, "timezone": args.timezone}
    try:
        created = api.post(f"/graphs/{args.graph}/schedules", json=body)
    except ApiError as error:
        out.api_error(error, lines=format_expression_details(error.details, args.expression))
        raise Reported(EXIT_API) from error
    if not out.for_scripts(created, created["schedule_id"]):
        out.out.print(
            f"[green]scheduled[/] {created['schedule_id']}: {escape(created['expression'])} ({created['timezone']})"
        )
        out.out.print(f"  next run at {created.get('next_run_at') or 'never'}")
    return EXIT_OK


@group.command("list", "a graph's schedules and their next run times", arg("graph"))
def list_schedules(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.get(f"/graphs/{args.graph}/schedules")
    if out.for_scripts(body):
        return EXIT_OK
    schedules = items_of(body, "schedules")
    shown = table("schedule_id", "expression", "timezone", "next_run_at", "input")
    for schedule in schedules:
        shown.add_row(
            str(schedule.get("schedule_id", "")),
            escape(str(schedule.get("expression", ""))),
            str(schedule.get("timezone", "")),
            str(schedule.get("next_run_at") or "never"),
            escape(json.dumps(abbreviate(schedule.get("input"), text=40))),
        )
    hint = f"[dim]no schedules: stepgraph schedules create {args.graph} --expression 'rate(1 hour)'[/]"
    out.out.print(shown if schedules else hint)
    return EXIT_OK


@group.command("delete", "delete a schedule (its runs are kept)", arg("graph"), arg("schedule"))
def delete(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = api.request("DELETE", f"/graphs/{args.graph}/schedules/{args.schedule}")
    if not out.for_scripts(body):
        out.out.print(f"[magenta]deleted[/] schedule {args.schedule} of {args.graph}")
    return EXIT_OK
