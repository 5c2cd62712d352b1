"""50 runs of one fan-out graph started at once through the API: none lost, none duplicated, all SUCCEEDED."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from functions.store.records import Records

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

RUNS = 50
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}
FAN_OUT = {
    "name": "fan-out",
    "nodes": [
        {"id": "root", "tool": "util.echo", "params": {"n": "{{ input.n }}"}},
        *({"id": f"m{i}", "tool": "util.echo", "params": {"i": i, "n": "{{ root.n }}"}} for i in range(4)),
        {
            "id": "join",
            "tool": "util.echo",
            "params": {"parts": ["{{ m0.i }}", "{{ m1.i }}", "{{ m2.i }}", "{{ m3.i }}"], "n": "{{ input.n }}"},
        },
    ],
    "edges": [
        *({"from": "root", "to": f"m{i}"} for i in range(4)),
        *({"from": f"m{i}", "to": "join"} for i in range(4)),
    ],
    "options": {"max_concurrency": 4},
}
NODES = ["join", "m0", "m1", "m2", "m3", "root"]


def all_events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """Every event of a run, following the cursor."""
    events: list[dict[str, Any]] = []
    url = f"/runs/{run_id}/events"
    while True:
        page = api.get(url)
        assert page.status_code == 200, page.text
        body = page.json()
        events.extend(body["events"])
        if not body["next"]:
            return events
        url = f"/runs/{run_id}/events?after={body['next']}"


def test_fifty_runs_started_at_once_all_succeed_with_every_record_and_event_once(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    # GIVEN a fan-out graph (root, four parallel nodes, a join)
    created = api.post("/graphs", json=FAN_OUT)
    assert created.status_code == 201, created.text
    graph_id = created.json()["graph_id"]

    # WHEN 50 threads start a run each at the same moment, through the API
    barrier = threading.Barrier(RUNS)
    answers: dict[int, tuple[int, dict[str, Any]]] = {}

    def start(n: int) -> None:
        with cloud.client(api_key=cloud.api_key) as client:
            barrier.wait()
            response = client.post(f"/graphs/{graph_id}/runs", json={"input": {"n": n}})
            answers[n] = (response.status_code, response.json())

    threads = [threading.Thread(target=start, args=(n,)) for n in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # THEN every start was accepted with its own run
    assert sorted(answers) == list(range(RUNS))
    assert {status for status, _ in answers.values()} == {202}, Counter(s for s, _ in answers.values())
    run_ids = {n: body["run_id"] for n, (_, body) in answers.items()}
    assert len(set(run_ids.values())) == RUNS

    # THEN every run reaches SUCCEEDED, with its own input carried to the join
    deadline = time.monotonic() + 120  # generous: the machine may be shared; reached only when runs hang
    pending = set(run_ids.values())
    runs: dict[str, dict[str, Any]] = {}
    while pending and time.monotonic() < deadline:
        for run_id in sorted(pending):
            body = api.get(f"/runs/{run_id}").json()
            assert "status" in body, body  # an error answer fails at once, saying which
            if body["status"] in TERMINAL:
                runs[run_id] = body
                pending.discard(run_id)
        time.sleep(0.2)
    assert not pending, f"{len(pending)} runs still RUNNING"
    assert cloud.drain_events(60)  # generous: the stream may be far behind on a shared machine
    for n, run_id in run_ids.items():
        run = api.get(f"/runs/{run_id}").json()
        assert run["status"] == "SUCCEEDED", (run_id, run["status"], run["error"])
        assert run["progress"] == {"done": 6, "total": 6, "percent": 100}
        assert {node: v["status"] for node, v in run["nodes"].items()} == dict.fromkeys(NODES, "SUCCEEDED")
        assert all(v["attempts"] == 1 for v in run["nodes"].values())
        assert run["nodes"]["join"]["output"] == {"parts": [0, 1, 2, 3], "n": n}

    # THEN each run has exactly one record per node and exactly one of each event
    records = Records()
    expected_events: Counter[tuple[str, str | None]] = Counter({("RUN_STARTED", None): 1, ("RUN_SUCCEEDED", None): 1})
    for node in NODES:
        expected_events[("NODE_STARTED", node)] = 1
        expected_events[("NODE_SUCCEEDED", node)] = 1
    for run_id in run_ids.values():
        stored = records.list_nodes(run_id)
        assert sorted((r.node, r.iteration) for r in stored) == [(node, 1) for node in NODES]
        events = all_events(api, run_id)
        assert Counter((e["type"], e["node"]) for e in events) == expected_events, run_id
    # ... and no status-change event was lost on the way to the events function
    assert cloud.bus.dead_letters == []
