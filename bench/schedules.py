"""Figures of schedules in the local cloud: the time from a schedule's due time to its run's start.

The local scheduler's thread runs as ``make dev`` runs it (waking at the next fire time), on a clock shifted so
that each new ``rate(1 minute)`` schedule falls due a moment later instead of a minute later. A run's start is
its ``started_at`` (recorded by the run-start path just before StartExecution); its due time is the fire time
minus the clock's shift. One schedule at a time, so the figure is the latency of one fire (scheduler wake-up,
the schedule function's invoke, its idempotency record, the run's records and StartExecution), not a queue.
Local figures measure this machine's emulation, not AWS (where Scheduler fires within about a minute).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bench.common import Figure, echo, session

if TYPE_CHECKING:
    from bench.common import Runner

LEAD_SECONDS = 1.5
"""How far ahead of now each schedule falls due on the shifted clock: more than the thread's longest sleep (1 s),
so it has seen the schedule and wakes at its time, as it does for a real first fire a minute away."""


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def due_to_start(runner: Runner, rounds: int) -> list[float]:
    """Milliseconds from due time to run start, one schedule per round."""
    api, scheduler = runner.api, runner.cloud.scheduler
    graph_id = runner.create({"name": "scheduled", "nodes": [echo("say", message="{{ input.message }}")]})
    scheduler.start(max_wait=1.0)
    latencies: list[float] = []
    try:
        for round_ in range(rounds):
            created = api.post(
                f"/graphs/{graph_id}/schedules", json={"expression": "rate(1 minute)", "input": {"message": round_}}
            )
            if created.status_code != 201:
                raise RuntimeError(f"POST schedules: {created.status_code} {created.text[:300]}")
            schedule = created.json()
            due = _parse(schedule["next_run_at"])
            shift = due - datetime.now(UTC) - timedelta(seconds=LEAD_SECONDS)
            scheduler.clock = lambda shift=shift: datetime.now(UTC) + shift
            run = _wait_for_run(runner, graph_id, schedule["schedule_id"])
            real_due = _parse(run["trigger"]["scheduled_time"]) - shift  # fire times are whole seconds
            latencies.append((_parse(run["started_at"]) - real_due).total_seconds() * 1000)
            api.delete(f"/graphs/{graph_id}/schedules/{schedule['schedule_id']}")
    finally:
        scheduler.stop()
    return latencies


def _wait_for_run(runner: Runner, graph_id: str, schedule_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runner.api.get("/runs", params={"graph_id": graph_id, "limit": 100}).json()["runs"]
        for run in runs:
            if run["trigger"].get("schedule_id") == schedule_id:
                return dict(run)
        time.sleep(0.01)
    raise TimeoutError(f"schedule {schedule_id} started no run within {timeout}s")


def figures(quick: bool = False) -> list[Figure]:
    rounds = 3 if quick else 10
    with session() as runner:
        latencies = due_to_start(runner, rounds)
    how = (
        f"{rounds} rate(1 minute) schedules one after another, the local scheduler's thread on a shifted clock; "
        "run's started_at minus the fire time (local emulation, not AWS)"
    )
    return [
        Figure(
            "schedules", "schedule due to run start, p50 (local)", round(statistics.median(latencies), 1), "ms", how
        ),
        Figure("schedules", "schedule due to run start, max (local)", round(max(latencies), 1), "ms", how),
    ]
