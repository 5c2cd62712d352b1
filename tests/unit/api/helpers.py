"""Seeding graphs whose state machines are hand-written (Pass/Wait/Fail), so run routes are tested alone."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from functions.store.events import EventLog
from functions.store.graphs import GraphVersion, new_graph_id
from functions.store.table import now_iso
from tests.unit.table_stream import pump

if TYPE_CHECKING:
    from functions.api.services import Services
    from tests.unit.api.conftest import Client

SPEC = {
    "name": "seeded",
    "nodes": [
        {"id": "a", "tool": "util.echo", "params": {"value": 1}},
        {"id": "b", "tool": "util.echo", "params": {"value": 2}},
    ],
    "edges": [{"from": "a", "to": "b"}],
}
SUMMARY: list[str] = []
"""Lines the conftest prints after the run (the schemathesis case count)."""
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


def succeed(results: dict[str, Any] | None = None) -> dict[str, Any]:
    """A machine that 'runs' the nodes by writing their results into the document."""
    return {
        "StartAt": "run",
        "States": {
            "run": {"Type": "Pass", "Result": results or {"a": 1, "b": 2}, "ResultPath": "$.results", "End": True}
        },
    }


def wait(seconds: int = 30) -> dict[str, Any]:
    return {"StartAt": "hold", "States": {"hold": {"Type": "Wait", "Seconds": seconds, "End": True}}}


def fail(error: str = "UpstreamDown", message: str = "the upstream is down") -> dict[str, Any]:
    cause = json.dumps({"errorType": error, "errorMessage": message})
    return {"StartAt": "boom", "States": {"boom": {"Type": "Fail", "Error": error, "Cause": cause}}}


def seed_graph(services: Services, definition: dict[str, Any], spec: dict[str, Any] | None = None) -> str:
    """A graph (version 1) whose state machine runs ``definition``; returns its id."""
    graph_id = new_graph_id()
    arn = services.sfn.create_state_machine(
        name=f"unit-{graph_id}", definition=json.dumps(definition), roleArn=services.settings.states_role_arn
    )["stateMachineArn"]
    services.graphs.create(
        GraphVersion(
            graph_id=graph_id,
            version=1,
            spec=spec or SPEC,
            definition_sha256="x",
            state_machine_arn=arn,
            created_at=now_iso(),
        )
    )
    return graph_id


def wait_for(client: Client, run_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        reply = client.get(f"/runs/{run_id}")
        assert reply.status == 200, reply.text
        run = reply.json()
        if run["status"] in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(0.02)


def all_events(client: Client, run_id: str, limit: int = 100) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = None
    for _ in range(100):
        pump()  # the stream function numbers the events written so far
        reply = client.get(f"/runs/{run_id}/events", params={"after": after, "limit": limit})
        assert reply.status == 200, reply.text
        page = reply.json()
        events.extend(page["events"])
        if not page["next"] or not page["events"]:
            return events
        after = page["next"]
    raise AssertionError("events never ended")


def numbered(services: Services, run_id: str) -> list[dict[str, Any]]:
    """The run's events once the stream function has numbered every write so far."""
    pump()
    return EventLog(services.records.table).page(run_id, limit=1000).events
