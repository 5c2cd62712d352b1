"""Resume (issue 13, point 2): a FAILED, CANCELLED or TIMED_OUT run continues under its id, in the local cloud.

Nodes that SUCCEEDED are not run again and keep their records; the others run. The cause of a failure is a
user Lambda (``lambda:``) that fails until the test "fixes" it, so the run's input stays the same.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from functional_support import wait_for_run

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud


class Flaky:
    """A user function that fails while ``broken`` and counts its calls (the side effect resume must not repeat)."""

    def __init__(self) -> None:
        self.broken = True
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any, _context: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        if self.broken:
            raise RuntimeError("the downstream service is down")
        return {"fixed": True, "got": event}


def create(api: httpx.Client, spec: dict[str, Any]) -> str:
    reply = api.post("/graphs", json=spec)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["graph_id"])


def start(api: httpx.Client, graph_id: str, run_input: dict[str, Any] | None = None) -> str:
    reply = api.post(f"/graphs/{graph_id}/runs", json={"input": run_input or {}})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["run_id"])


def resume(api: httpx.Client, run_id: str) -> httpx.Response:
    return api.post(f"/runs/{run_id}/resume")


def events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    for _ in range(100):
        page = api.get(f"/runs/{run_id}/events", params={"after": after}).json()
        found += page["events"]
        if not page["next"]:
            return found
        after = page["next"]
    raise AssertionError("the event log never ended")


def started_count(log: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(e["node"]) for e in log if e["type"] == "NODE_STARTED")


CHAIN = {
    "name": "chain",
    "nodes": [
        {"id": "a", "tool": "util.echo", "params": {"step": "a", "x": "{{ input.x }}"}, "update_state": {"seen": "x"}},
        {"id": "b", "tool": "util.echo", "params": {"step": "b", "from_a": "{{ a.step }}"}},
        {"id": "c", "tool": "lambda:stepgraph-user-flaky", "params": {"from_b": "{{ b.from_a }}"}},
        {"id": "d", "tool": "util.echo", "params": {"c": "{{ c.fixed }}", "seen": "{{ state.seen }}"}},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"}],
}


def test_a_failed_run_resumed_after_the_fix_runs_only_what_had_not_succeeded(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a run that failed at c after a and b succeeded
    flaky = Flaky()
    cloud.register("stepgraph-user-flaky", flaky)
    graph_id = create(api, CHAIN)
    run_id = start(api, graph_id, {"x": 7})
    failed = wait_for_run(api, run_id, cloud=cloud)
    assert failed["status"] == "FAILED", failed
    before = {node: failed["nodes"][node] for node in ("a", "b")}
    assert [before[n]["status"] for n in ("a", "b")] == ["SUCCEEDED", "SUCCEEDED"]
    assert failed["nodes"]["c"]["status"] == "FAILED"
    calls_before = flaky.calls

    # WHEN the cause is fixed and the run is resumed
    flaky.broken = False
    reply = resume(api, run_id)

    # THEN it runs again under its id; a and b keep their records and are not run again, c and d run
    assert reply.status_code == 202, reply.text
    assert reply.json()["run_id"] == run_id
    assert reply.json()["status"] == "RUNNING"
    assert reply.json()["resumes"] == 1
    run = wait_for_run(api, run_id, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    for node in ("a", "b"):
        kept = run["nodes"][node]
        assert kept["status"] == "SUCCEEDED"
        for key in ("started_at", "finished_at", "attempts", "duration_ms", "output"):
            assert kept[key] == before[node][key], (node, key)
    assert flaky.calls == calls_before + 1
    assert run["nodes"]["c"]["status"] == "SUCCEEDED"
    assert run["nodes"]["d"]["output"] == {"c": True, "seen": 7}  # state rebuilt from a's recorded output
    assert run["error"] is None and run["finished_at"]
    log = events(api, run_id)
    assert started_count(log) == Counter({"a": 1, "b": 1, "c": 1, "d": 1})  # a lambda: node starts when it succeeds
    assert [e["node"] for e in log if e["type"] == "NODE_FAILED"] == ["c"]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    kinds = [e["type"] for e in log if e["type"].startswith("RUN_")]
    assert kinds == ["RUN_STARTED", "RUN_FAILED", "RUN_RESUMED", "RUN_SUCCEEDED"]
    assert run["resumes"] == 1
    executions = run["executions"]
    assert [e["status"] for e in executions] == ["FAILED", "SUCCEEDED"]
    assert executions[0]["execution_arn"].endswith(f":{run_id}")
    assert executions[1]["execution_arn"].endswith(f":{run_id}-r1")
    assert run["execution_arn"] == executions[1]["execution_arn"]
    assert run["console_url"] == executions[1]["console_url"]
    assert all(e["console_url"].startswith("https://") for e in executions)
