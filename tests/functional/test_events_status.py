"""The status-change function through the local stack: terminal statuses from events, node timeouts, duplicates."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
from functional_support import wait_execution

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud


def stored(cloud: LocalCloud, run_id: str) -> dict[str, Any]:
    """The run item as the events function left it (read from DynamoDB, not through the API)."""
    table = boto3.resource("dynamodb", region_name=cloud.region).Table(cloud.table_name)
    return dict(table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"})["Item"])


def test_a_node_timeout_fails_the_run_and_the_node_with_states_timeout(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a graph whose node sleeps past its timeout, with no retries
    spec = {
        "name": "too-slow",
        "nodes": [
            {
                "id": "slow",
                "tool": "util.sleep",
                "params": {"seconds": 3},
                "timeout_seconds": 1,
                "retry": {"max_attempts": 0},
            }
        ],
    }
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]
    started = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()

    # WHEN the execution ends and its status event is delivered
    assert wait_execution(started["execution_arn"])["status"] == "FAILED"
    assert cloud.drain_events()

    # THEN the events function has stored FAILED with Step Functions' error, before any API read
    item = stored(cloud, started["run_id"])
    assert item["status"] == "FAILED"
    assert json.loads(item["error_json"])["code"] == "States.Timeout"
    # AND the node that never reported back is FAILED with States.Timeout too
    run = api.get(f"/runs/{started['run_id']}").json()
    assert run["nodes"]["slow"]["status"] == "FAILED", run["nodes"]
    assert run["nodes"]["slow"]["error"]["code"] == "States.Timeout"
    types = [e["type"] for e in api.get(f"/runs/{started['run_id']}/events").json()["events"]]
    assert types.count("RUN_FAILED") == 1
    assert types.count("NODE_FAILED") == 1


def test_a_duplicate_status_event_writes_nothing(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a run that succeeded and whose status event was processed
    spec = {"name": "echo", "nodes": [{"id": "only", "tool": "util.echo", "params": {"v": 1}}]}
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]
    started = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()
    wait_execution(started["execution_arn"])
    assert cloud.drain_events()
    event = next(d.event for d in cloud.bus.deliveries if d.event["detail"]["name"] == started["run_id"])
    before = api.get(f"/runs/{started['run_id']}/events").json()["events"]

    # WHEN EventBridge delivers the same event again (at-least-once delivery)
    result = cloud.invoke("EventsFunction", event)

    # THEN the function reports nothing settled and the run and its log are unchanged
    assert result.function_error is None
    assert json.loads(result.payload)["settled"] is False
    assert stored(cloud, started["run_id"])["status"] == "SUCCEEDED"
    after = api.get(f"/runs/{started['run_id']}/events").json()["events"]
    assert after == before
    assert [e["type"] for e in after].count("RUN_SUCCEEDED") == 1
