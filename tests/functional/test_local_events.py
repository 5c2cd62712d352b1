"""The sample events in events/ (for ``sam local invoke -e``) are valid and do what their names say when
invoked through the local cloud."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("api-*.json")))
def test_api_events_have_the_rest_proxy_shape(name: str) -> None:
    event = load(name)
    assert set(event) >= {
        "resource", "path", "httpMethod", "headers", "multiValueHeaders", "queryStringParameters",
        "pathParameters", "requestContext", "body", "isBase64Encoded",
    }  # fmt: skip
    assert event["requestContext"]["stage"] == "v1"
    assert event["requestContext"]["path"] == "/v1" + event["path"]
    if event["resource"] == "/{proxy+}":
        assert event["pathParameters"] == {"proxy": event["path"].lstrip("/")}


def test_health_event(cloud: LocalCloud) -> None:
    result = cloud.invoke("ApiFunction", load("api-health.json"))
    assert result.function_error is None, result.payload
    assert result.json()["statusCode"] == 200


def test_post_graphs_event_creates_the_graph(cloud: LocalCloud, api: httpx.Client) -> None:
    # WHEN the sample POST /graphs event is invoked on the API function
    result = cloud.invoke("ApiFunction", load("api-post-graphs.json"))
    assert result.function_error is None, result.payload
    response = result.json()
    # THEN the graph is created, and the API serves it
    assert response["statusCode"] == 201, response["body"]
    graph_id = json.loads(response["body"])["graph_id"]
    assert api.get(f"/graphs/{graph_id}").status_code == 200


def test_get_run_event_reads_a_run(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN the sample GET /runs/{id} event: its run does not exist in a fresh stack
    event = load("api-get-run.json")
    missing = cloud.invoke("ApiFunction", event).json()
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["error"]["code"]
    # WHEN the event's id is that of a run started through the API
    graph = api.post("/graphs", json=json.loads(load("api-post-graphs.json")["body"])).json()
    run_id = api.post(f"/graphs/{graph['graph_id']}/runs", json={"input": {"message": "hi"}}).json()["run_id"]
    event["path"] = f"/runs/{run_id}"
    event["pathParameters"] = {"proxy": f"runs/{run_id}"}
    event["requestContext"]["path"] = f"/v1/runs/{run_id}"
    found = cloud.invoke("ApiFunction", event).json()
    # THEN it is served
    assert found["statusCode"] == 200
    assert json.loads(found["body"])["run_id"] == run_id


@pytest.mark.parametrize("name", ["status-change-succeeded.json", "status-change-failed.json"])
def test_status_change_events_match_the_rule_and_are_processed(cloud: LocalCloud, name: str) -> None:
    from local.template import pattern_matches

    event = load(name)
    # THEN the stack's rule selects it (as EventBridge would) ...
    assert any(pattern_matches(rule.pattern, event) for rule in cloud.template.event_rules())
    # ... and the events function handles it: the sample's run is not in a fresh stack
    result = cloud.invoke("EventsFunction", event)
    assert result.function_error is None, result.payload
    assert result.json()["settled"] is False


def test_status_change_event_settles_a_real_run(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run whose execution has ended and whose status event was delivered by the emulated rule
    graph = api.post("/graphs", json=json.loads(load("api-post-graphs.json")["body"])).json()
    started = api.post(f"/graphs/{graph['graph_id']}/runs", json={"input": {"message": "hi"}}).json()
    deadline = time.monotonic() + 20
    while api.get(f"/runs/{started['run_id']}").json()["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud.drain_events()
    delivered = [e for e in cloud.bus.events if e["detail"]["name"] == started["run_id"]]
    assert [e["detail"]["status"] for e in delivered] == ["SUCCEEDED"]
    # WHEN the same event is delivered again (EventBridge delivers at least once)
    again = cloud.invoke("EventsFunction", delivered[0]).json()
    # THEN nothing changes
    assert again["settled"] is False
    assert api.get(f"/runs/{started['run_id']}").json()["status"] == "SUCCEEDED"
