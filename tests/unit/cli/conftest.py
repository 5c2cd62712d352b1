"""An in-memory stand-in for the stepgraph HTTP API (DESIGN.md's shapes), served through httpx.MockTransport.

The CLI's unit tests use it to check what a user sees without the local cloud; the functional tests run the
same commands against the real local stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from pathlib import Path

SPEC = {
    "name": "pair",
    "nodes": [
        {"id": "first", "tool": "util.echo", "params": {"message": "{{ input.message }}"}},
        {"id": "second", "tool": "util.echo", "params": {"got": "{{ first.message }}"}},
    ],
    "edges": [{"from": "first", "to": "second"}],
}

DIAGRAM = 'flowchart TD\n  first["first<br/>util.echo"]\n  second["second<br/>util.echo"]\n  first --> second\n'


def error(status: int, code: str, message: str, details: list[Any] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details or []}})


@dataclass
class FakeRun:
    """A run that advances one step each time it is read: first runs, then second runs (or fails)."""

    run_id: str
    graph_id: str
    input: Any
    fail: bool = False
    reads: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, kind: str, node: str | None = None, message: str = "") -> None:
        at = f"2026-01-01T00:00:{len(self.events):02d}.000000Z"
        seq = len(self.events) + 1
        event = {"seq": seq, "at": at, "type": kind, "node": node, "attempt": 1 if node else None, "message": message}
        self.events.append(event)

    def advance(self) -> None:
        self.reads += 1
        steps: dict[int, list[tuple[str, str | None, str]]] = {
            1: [("RUN_STARTED", None, ""), ("NODE_STARTED", "first", "")],
            2: [("NODE_SUCCEEDED", "first", ""), ("NODE_STARTED", "second", "")],
            3: [("NODE_FAILED", "second", "UpstreamDown: boom")] if self.fail else [("NODE_SUCCEEDED", "second", "")],
            4: [("RUN_FAILED", None, "")] if self.fail else [("RUN_SUCCEEDED", None, "")],
        }
        for kind, node, message in steps.get(self.reads, []):
            self.event(kind, node, message)

    def body(self) -> dict[str, Any]:
        done = self.reads >= 4
        first_done = self.reads >= 2
        second_done = self.reads >= 3
        nodes: dict[str, Any] = {}
        if self.reads >= 1:
            nodes["first"] = self.node("SUCCEEDED" if first_done else "RUNNING", {"message": self.input.get("message")})
        if first_done:
            status = ("FAILED" if self.fail else "SUCCEEDED") if second_done else "RUNNING"
            nodes["second"] = self.node(status, {"got": self.input.get("message")})
            if status == "FAILED":
                nodes["second"]["error"] = {"code": "UpstreamDown", "message": "boom"}
                nodes["second"]["output"] = None
        status = ("FAILED" if self.fail else "SUCCEEDED") if done else "RUNNING"
        count = sum(1 for n in nodes.values() if n["status"] in ("SUCCEEDED", "FAILED"))
        return {
            "run_id": self.run_id,
            "graph_id": self.graph_id,
            "version": 1,
            "status": status,
            "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-{self.graph_id}:{self.run_id}",
            "console_url": "https://console.aws.amazon.com/states/home",
            "input": self.input,
            "state": self.input,
            "error": {"code": "UpstreamDown", "message": "boom"} if self.fail and done else None,
            "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:00:04Z" if done else None,
            "progress": {"done": count, "total": 2, "percent": count * 50},
            "nodes": nodes,
        }

    @staticmethod
    def node(status: str, output: Any) -> dict[str, Any]:
        finished = status != "RUNNING"
        return {
            "status": status,
            "attempts": 1,
            "iterations": 1,
            "started_at": "2026-01-01T00:00:01Z",
            "finished_at": "2026-01-01T00:00:02Z" if finished else None,
            "duration_ms": 1234 if finished else None,
            "output": output if status == "SUCCEEDED" else None,
            "error": None,
        }


@dataclass
class FakeApi:
    """Routes of DESIGN.md over in-memory graphs and runs; records every request it served."""

    page_size: int = 2
    null_cursor_at_end: bool = False
    fail_runs: bool = False
    validate_errors: list[dict[str, Any]] | None = None
    create_error: httpx.Response | None = None
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, FakeRun] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url="http://api.test", headers={"x-api-key": "k"}, transport=httpx.MockTransport(self.handle)
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("x-api-key") != "k":
            return error(401, "Unauthorized", "missing or wrong x-api-key")
        parts = [p for p in request.url.path.split("/") if p]
        body: Any = json.loads(request.content) if request.content else {}
        method = request.method
        if parts == ["graphs"] and method == "POST":
            if self.create_error is not None:
                return self.create_error
            graph_id = f"g_{len(self.graphs):012x}"
            self.graphs[graph_id] = {"graph_id": graph_id, "name": body["name"], "latest_version": 1, "spec": body}
            return httpx.Response(
                201,
                json={
                    "graph_id": graph_id,
                    "version": 1,
                    "state_machine_arn": f"arn:aws:states:us-east-1:123456789012:stateMachine:stepgraph-{graph_id}",
                    "console_url": "https://console.aws.amazon.com/states/home",
                },
            )
        if parts == ["graphs", "validate"] and method == "POST":
            if self.validate_errors:
                return httpx.Response(
                    200, json={"valid": False, "errors": self.validate_errors, "definition": None, "diagram": None}
                )
            return httpx.Response(
                200, json={"valid": True, "errors": [], "definition": {"StartAt": "first"}, "diagram": DIAGRAM}
            )
        if parts == ["graphs"] and method == "GET":
            listed = [{k: g[k] for k in ("graph_id", "name", "latest_version")} for g in self.graphs.values()]
            return httpx.Response(200, json={"graphs": listed, "next": None})
        if len(parts) == 2 and parts[0] == "graphs" and method == "GET":
            graph = self.graphs.get(parts[1])
            return httpx.Response(200, json=graph) if graph else error(404, "NotFound", f"no graph {parts[1]}")
        if len(parts) == 3 and parts[0] == "graphs" and parts[2] == "diagram":
            if parts[1] not in self.graphs:
                return error(404, "NotFound", f"no graph {parts[1]}")
            return httpx.Response(200, text=DIAGRAM, headers={"content-type": "text/plain"})
        if len(parts) == 3 and parts[0] == "graphs" and parts[2] == "runs" and method == "POST":
            if parts[1] not in self.graphs:
                return error(404, "NotFound", f"no graph {parts[1]}")
            run_id = f"r_{len(self.runs):016x}"
            self.runs[run_id] = FakeRun(run_id, parts[1], body.get("input", {}), fail=self.fail_runs)
            return httpx.Response(202, json={"run_id": run_id, "execution_arn": "arn:x", "status": "RUNNING"})
        if parts == ["runs"] and method == "GET":
            listed = [r.body() for r in self.runs.values()]
            return httpx.Response(200, json={"runs": listed, "next": None})
        if len(parts) >= 2 and parts[0] == "runs":
            run = self.runs.get(parts[1])
            if run is None:
                return error(404, "NotFound", f"no run {parts[1]}")
            if len(parts) == 2:
                run.advance()
                return httpx.Response(200, json=run.body())
            if parts[2] == "events":
                start = int(request.url.params.get("after", "0"))
                page = run.events[start : start + self.page_size]
                end = start + len(page)
                following: int | None = end
                if self.null_cursor_at_end and end >= len(run.events):
                    following = None
                return httpx.Response(200, json={"events": page, "next": following})
            if parts[2] == "cancel":
                if run.reads >= 4:
                    return error(409, "Conflict", f"run {run.run_id} already finished: SUCCEEDED")
                return httpx.Response(200, json={"run_id": run.run_id, "status": "CANCELLED"})
        return error(404, "NotFound", f"no route {method} {request.url.path}")


@pytest.fixture
def fake() -> FakeApi:
    """A fresh in-memory API."""
    return FakeApi()


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    """The two-node spec, pretty-printed so positions in the file are meaningful."""
    path = tmp_path / "pair.json"
    path.write_text(json.dumps(SPEC, indent=2) + "\n")
    return path
