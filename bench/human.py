"""Figures of people in the loop in the local cloud: the time from a respond to the next node's start.

Each round starts a run of ``approve`` (``human.approval``) -> ``after`` (``util.echo``), waits until the approval
is ``WAITING``, then answers it. Measured: the respond call itself (claim, token read, SendTaskSuccess), and from
just before the respond is sent to ``after``'s ``started_at`` (the Task's callback, ``approve.answer`` recording
the answer, the next Task's invocation). One run at a time, so the figure is the latency of one answer, not a
queue. Local figures measure this machine's emulation, not AWS.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bench.common import Figure, echo, session

if TYPE_CHECKING:
    from bench.common import Runner

SPEC: dict[str, Any] = {
    "name": "respond-latency",
    "nodes": [
        {"id": "approve", "tool": "human.approval", "params": {"prompt": "go on?"}},
        echo("after", approved="{{ approve.approved }}"),
    ],
    "edges": [{"from": "approve", "to": "after"}],
}


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _run(runner: Runner, run_id: str, until: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = dict(runner.api.get(f"/runs/{run_id}").json())
        if until(run):
            return run
        time.sleep(0.01)
    raise TimeoutError(f"run {run_id}: condition not met within {timeout}s")


def respond_to_next_start(runner: Runner, rounds: int) -> tuple[list[float], list[float]]:
    """``(respond call ms, respond sent -> next node started ms)``, one run per round."""
    graph_id = runner.create(SPEC)
    calls: list[float] = []
    to_next: list[float] = []
    for _ in range(rounds):
        run_id = runner.start(graph_id)["run_id"]
        _run(runner, run_id, lambda run: bool(run.get("waiting")))
        sent = time.time()
        answered = runner.api.post(f"/runs/{run_id}/nodes/approve/respond", json={"approved": True})
        calls.append((time.time() - sent) * 1000)
        if answered.status_code != 200:
            raise RuntimeError(f"respond: {answered.status_code} {answered.text[:300]}")
        run = _run(runner, run_id, lambda run: run["nodes"]["after"].get("started_at") is not None)
        to_next.append((_epoch(run["nodes"]["after"]["started_at"]) - sent) * 1000)
    return calls, to_next


def figures(quick: bool = False) -> list[Figure]:
    rounds = 3 if quick else 10
    with session() as runner:
        calls, to_next = respond_to_next_start(runner, rounds)
    how = (
        f"{rounds} runs of approve (human.approval) -> after (util.echo), answered once WAITING; "
        "from just before POST .../respond to after's started_at (local emulation, not AWS)"
    )
    call_how = f"{rounds} POST /runs/{{id}}/nodes/approve/respond calls: claim, token read, SendTaskSuccess"
    return [
        Figure("human", "respond to next node start, p50 (local)", round(statistics.median(to_next), 1), "ms", how),
        Figure("human", "respond to next node start, max (local)", round(max(to_next), 1), "ms", how),
        Figure("human", "respond call, p50 (local)", round(statistics.median(calls), 1), "ms", call_how),
    ]
