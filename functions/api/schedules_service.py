"""Schedule operations behind the routes: create (checked, counted, then an EventBridge Scheduler schedule in the
stack's group), list with each one's next fire time, delete, and delete all of a graph's.

The schedule's target is the stack's ScheduleFunction, invoked as SchedulerRole with an input that names the
schedule and carries ``<aws.scheduler.scheduled-time>``; the run input stays in the table (a target input is
at most 8 KB), so the function reads it, and a fire that races a delete finds nothing to start.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.api.runs_service import check_run_input
from functions.errors import NotFoundError, UpstreamError
from functions.schedules import expressions
from functions.store.schedules import Schedule, new_schedule_id
from functions.store.table import now_iso

if TYPE_CHECKING:
    from functions.api.services import Services

MAX_SCHEDULES_PER_GRAPH = 20
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
"""EventBridge Scheduler's context attribute: the fire time, replaced in the target input on every delivery."""
RETRY_MAX_EVENT_AGE_SECONDS = 6 * 3600
"""How long Scheduler retries a failed delivery: well within the 24 h the start's idempotency record lasts, so
a late retry of a fire that did start a run finds that run instead of starting another."""
RETRY_MAX_ATTEMPTS = 50


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def view(schedule: Schedule, now: datetime | None = None) -> dict[str, Any]:
    """The API's shape of a schedule, with its next fire time (null once an ``at`` schedule has fired)."""
    parsed = expressions.parse(schedule.expression, schedule.timezone, now=_parse_iso(schedule.created_at))
    following = parsed.next_after(now or datetime.now(UTC), anchor=_parse_iso(schedule.created_at))
    return {
        "schedule_id": schedule.schedule_id,
        "graph_id": schedule.graph_id,
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "input": schedule.input,
        "state": "ENABLED",
        "created_at": schedule.created_at,
        "next_run_at": _iso(following),
    }


def target_input(schedule: Schedule) -> str:
    """What Scheduler passes to the function on every fire (the scheduled time filled in by Scheduler)."""
    return json.dumps(
        {"graph_id": schedule.graph_id, "schedule_id": schedule.schedule_id, "scheduled_time": SCHEDULED_TIME},
        separators=(",", ":"),
    )


def create_schedule(
    services: Services, graph_id: str, expression: str, timezone: str, run_input: dict[str, Any]
) -> dict[str, Any]:
    """Check the expression, time zone and input, take one of the graph's slots, record the schedule, then
    create it in EventBridge Scheduler; undone in reverse if a step fails."""
    expressions.parse(expression, timezone)
    check_run_input(run_input)
    services.graphs.get(graph_id)
    services.schedules.claim_slot(graph_id, MAX_SCHEDULES_PER_GRAPH)
    schedule_id = new_schedule_id()
    schedule = Schedule(
        schedule_id=schedule_id,
        graph_id=graph_id,
        expression=expression,
        timezone=timezone,
        created_at=now_iso(),
        aws_name=f"{graph_id}-{schedule_id}",
        input=run_input,
    )
    try:
        services.schedules.put(schedule)
    except Exception:
        services.schedules.release_slot(graph_id)
        raise
    try:
        _create_in_scheduler(services, schedule)
    except Exception:
        if services.schedules.delete(graph_id, schedule_id):
            services.schedules.release_slot(graph_id)
        raise
    try:  # a delete of the graph that listed its schedules before this one was written must not leave it firing
        services.graphs.get(graph_id)
    except NotFoundError:
        remove(services, schedule)
        raise
    return view(schedule)


def _create_in_scheduler(services: Services, schedule: Schedule) -> None:
    settings = services.settings
    try:
        services.scheduler.create_schedule(
            Name=schedule.aws_name,
            GroupName=settings.schedule_group,
            Description=f"stepgraph: runs graph {schedule.graph_id} (schedule {schedule.schedule_id})",
            ScheduleExpression=schedule.expression,
            ScheduleExpressionTimezone=schedule.timezone,
            FlexibleTimeWindow={"Mode": "OFF"},
            State="ENABLED",
            Target={
                "Arn": settings.schedule_function_arn,
                "RoleArn": settings.scheduler_role_arn,
                "Input": target_input(schedule),
                "RetryPolicy": {
                    "MaximumEventAgeInSeconds": RETRY_MAX_EVENT_AGE_SECONDS,
                    "MaximumRetryAttempts": RETRY_MAX_ATTEMPTS,
                },
            },
        )
    except ClientError as exc:
        raise UpstreamError(f"CreateSchedule failed: {exc.response['Error'].get('Code')}") from exc


def list_schedules(services: Services, graph_id: str) -> list[dict[str, Any]]:
    services.graphs.get(graph_id)
    now = datetime.now(UTC)
    return [view(s, now) for s in services.schedules.list(graph_id)]


def delete_schedule(services: Services, graph_id: str, schedule_id: str) -> Schedule:
    """Delete one schedule (404 when the graph or the schedule is unknown)."""
    services.graphs.get(graph_id)
    schedule = services.schedules.get(graph_id, schedule_id)
    if not remove(services, schedule):
        raise NotFoundError(f"graph {graph_id!r} has no schedule {schedule_id!r}")
    return schedule


def delete_all(services: Services, graph_id: str) -> int:
    """Delete every schedule of a graph (the graph is being deleted); how many were removed."""
    return sum(1 for schedule in services.schedules.list(graph_id) if remove(services, schedule))


def remove(services: Services, schedule: Schedule) -> bool:
    """Stop the schedule in EventBridge Scheduler first (so it fires no more), then forget it; False when a
    concurrent delete already had."""
    try:
        services.scheduler.delete_schedule(Name=schedule.aws_name, GroupName=services.settings.schedule_group)
    except ClientError as exc:
        if exc.response["Error"].get("Code") != "ResourceNotFoundException":
            raise UpstreamError(f"DeleteSchedule failed: {exc.response['Error'].get('Code')}") from exc
    if not services.schedules.delete(schedule.graph_id, schedule.schedule_id):
        return False
    services.schedules.release_slot(schedule.graph_id)
    return True
