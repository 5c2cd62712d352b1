"""The whole path through the local cloud: spec over HTTP → state machine → executor Lambdas → DynamoDB → API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from functional_support import wait_for_run

if TYPE_CHECKING:
    import httpx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_two_echo_nodes_run_end_to_end(api: httpx.Client) -> None:
    # GIVEN the linear example graph: second references first's output
    spec = json.loads((EXAMPLES / "echo-chain.json").read_text())

    # WHEN it is created and run through the API
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    graph = created.json()
    assert graph["graph_id"].startswith("g_")
    assert graph["state_machine_arn"].startswith("arn:aws:states:")

    started = api.post(f"/graphs/{graph['graph_id']}/runs", json={"input": {"message": "hello"}})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    # THEN the run succeeds and both nodes report status, attempts, timings and outputs
    run = wait_for_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert run["graph_id"] == graph["graph_id"]
    assert run["version"] == 1
    assert run["finished_at"] is not None
    assert run["progress"] == {"done": 2, "total": 2, "percent": 100}
    first, second = run["nodes"]["first"], run["nodes"]["second"]
    for node in (first, second):
        assert node["status"] == "SUCCEEDED"
        assert node["attempts"] == 1
        assert node["iterations"] == 1
        assert node["started_at"] <= node["finished_at"]
        assert node["duration_ms"] >= 0
        assert node["error"] is None
    assert first["output"] == {"message": "hello"}
    assert second["output"] == {"got": "hello", "note": "second saw: hello"}


def test_a_node_that_raises_fails_the_run_with_its_error(api: httpx.Client) -> None:
    # GIVEN a graph whose second node always fails with a named error and no retries
    spec = {
        "name": "fails",
        "nodes": [
            {"id": "ok", "tool": "util.echo", "params": {"value": 1}},
            {
                "id": "boom",
                "tool": "util.fail",
                "params": {"failures": 99, "error": "UpstreamDown"},
                "retry": {"max_attempts": 0},
            },
            {"id": "after", "tool": "util.echo", "params": {"value": 2}},
        ],
        "edges": [{"from": "ok", "to": "boom"}, {"from": "boom", "to": "after"}],
    }
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]

    # WHEN it runs
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    run = wait_for_run(api, run_id)

    # THEN the run is FAILED and the failing node carries the tool's error code and message
    assert run["status"] == "FAILED", run
    assert run["nodes"]["ok"]["status"] == "SUCCEEDED"
    boom = run["nodes"]["boom"]
    assert boom["status"] == "FAILED"
    assert boom["attempts"] == 1
    assert boom["error"]["code"] == "UpstreamDown"
    assert boom["error"]["message"]
    assert run["error"]["code"] == "UpstreamDown"
    # AND the node after it never ran: cancelled by the failure, not skipped by a condition
    assert run["nodes"]["after"]["status"] == "CANCELLED"
    assert run["nodes"]["after"]["attempts"] == 0
