"""The WebSocket API's function and the stream function's push, on moto (frames kept by a test poster)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from functions.live.ws import WebSocketHandler
from tests.unit.api.conftest import API_KEY
from tests.unit.api.helpers import seed_graph, succeed, wait, wait_for
from tests.unit.table_stream import Frames, posted, pump

if TYPE_CHECKING:
    from functions.api.services import Services
    from tests.unit.api.conftest import Client


def ws_event(route: str, connection: str = "c1", body: Any = None, **extra: Any) -> dict[str, Any]:
    """An API Gateway WebSocket event as the integration receives it."""
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
            "connectionId": connection,
            "stage": "v1",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "isBase64Encoded": False,
        **({"body": body if isinstance(body, str) else json.dumps(body)} if body is not None else {}),
        **extra,
    }


@pytest.fixture
def ws(aws: Services) -> tuple[WebSocketHandler, Frames]:
    frames = Frames()
    return WebSocketHandler(table=aws.table, poster=frames), frames


def connect(handler: WebSocketHandler, connection: str = "c1") -> None:
    assert handler(ws_event("$connect", connection, headers={"x-api-key": API_KEY}))["statusCode"] == 200


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({"X-Api-Key": API_KEY}, None, 200),
        (None, {"api_key": API_KEY}, 200),
        (None, None, 401),
        ({"x-api-key": "wrong"}, None, 401),
        (None, {"api_key": ""}, 401),
    ],
    ids=["header", "query", "missing", "wrong", "empty"],
)
def test_a_connection_is_authorized_by_the_api_key(
    ws: tuple[WebSocketHandler, Frames], headers: Any, query: Any, status: int
) -> None:
    handler, _ = ws
    event = ws_event("$connect", headers=headers or {}, queryStringParameters=query)
    assert handler(event)["statusCode"] == status


@pytest.mark.parametrize(
    ("route", "body", "code"),
    [
        ("$default", "not json", "bad_request"),
        ("$default", [1, 2], "bad_request"),
        ("$default", {"action": "dance"}, "bad_request"),
        ("$default", {"run_id": "r_0000000000000000"}, "bad_request"),
        ("subscribe", {"action": "subscribe"}, "bad_request"),
        ("subscribe", {"action": "subscribe", "run_id": "../etc"}, "bad_request"),
        ("subscribe", {"action": "subscribe", "run_id": "r_0000000000000000", "after": -1}, "bad_request"),
        ("subscribe", {"action": "subscribe", "run_id": "r_0000000000000000", "after": "x"}, "bad_request"),
        ("subscribe", {"action": "subscribe", "run_id": "r_0000000000000000"}, "not_found"),
        ("unsubscribe", {"action": "unsubscribe", "run_id": "r_0000000000000000"}, "not_found"),
        ("subscribe", "x" * 20000, "bad_request"),
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-action",
        "no-action",
        "no-run",
        "bad-run-id",
        "negative-after",
        "text-after",
        "unknown-run",
        "not-subscribed",
        "oversized",
    ],
)
def test_bad_frames_get_an_error_frame_and_never_a_failure(
    ws: tuple[WebSocketHandler, Frames], route: str, body: Any, code: str
) -> None:
    handler, frames = ws
    connect(handler)
    # WHEN a bad frame arrives THEN the function answers 200 and posts one error frame with the code
    assert handler(ws_event(route, body=body))["statusCode"] == 200
    (message,) = frames.messages("c1")
    assert message["type"] == "error" and message["error"]["code"] == code and message["error"]["message"]


def test_a_connection_follows_a_bounded_number_of_runs(
    aws: Services, client: Client, ws: tuple[WebSocketHandler, Frames], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a connection that may follow 2 runs at once (1,000 in stepgraph: the connection item lists them)
    from functions.live import subscriptions

    monkeypatch.setattr(subscriptions, "MAX_RUNS_PER_CONNECTION", 2)
    handler, frames = ws
    graph_id = seed_graph(aws, wait(1))
    runs = [client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"] for _ in range(3)]
    connect(handler)

    def subscribe(run_id: str) -> None:
        assert handler(ws_event("subscribe", body={"action": "subscribe", "run_id": run_id}))["statusCode"] == 200

    # WHEN it subscribes to two runs, one of them again, then a third
    for run_id in (runs[0], runs[1], runs[1], runs[2]):
        subscribe(run_id)
    # THEN only the third is refused, with an error frame naming the limit
    errors = [m for m in frames.messages("c1") if m["type"] == "error"]
    assert [e["error"]["code"] for e in errors] == ["limit_exceeded"]
    assert "at most 2 runs" in errors[0]["error"]["message"]
    # AND once it unsubscribes from one, the third can be followed
    assert handler(ws_event("unsubscribe", body={"action": "unsubscribe", "run_id": runs[0]}))["statusCode"] == 200
    subscribe(runs[2])
    assert [m for m in frames.messages("c1") if m["type"] == "error"] == errors


def test_a_subscriber_gets_the_backlog_then_live_events_then_the_run_message(
    aws: Services, client: Client, ws: tuple[WebSocketHandler, Frames]
) -> None:
    # GIVEN a run whose first events are numbered, and a subscriber that had seq 0
    handler, _ = ws
    graph_id = seed_graph(aws, wait(1))
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    pump()
    connect(handler, "early")
    handler(ws_event("subscribe", "early", {"action": "subscribe", "run_id": run_id, "after": 0}))
    pump()
    # WHEN the run ends, and a second subscriber arrives after the end
    wait_for(client, run_id)
    pump()
    connect(handler, "late")
    handler(ws_event("subscribe", "late", {"action": "subscribe", "run_id": run_id}))
    pump()

    # THEN both got every event once, in seq order, then one run message, and nothing else
    for connection in ("early", "late"):
        messages = posted().messages(connection)
        events = [m["event"] for m in messages if m["type"] == "event"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events] == ["RUN_STARTED", "NODE_SKIPPED", "NODE_SKIPPED", "RUN_SUCCEEDED"]
        assert messages[-1] == {"type": "run", "run_id": run_id, "status": "SUCCEEDED", "error": None}
        assert len(messages) == len(events) + 1
    # AND the subscriptions ended with the run
    assert aws.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "SUB#early"}).get("Item") is None


def test_a_gone_connection_is_removed_and_others_still_get_their_frames(
    aws: Services, client: Client, ws: tuple[WebSocketHandler, Frames]
) -> None:
    # GIVEN two subscribers of a running run, one of which has vanished
    handler, _ = ws
    graph_id = seed_graph(aws, wait(1))
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    for connection in ("gone", "here"):
        connect(handler, connection)
        handler(ws_event("subscribe", connection, {"action": "subscribe", "run_id": run_id}))
    posted().gone.add("gone")
    # WHEN the run's events are pushed
    pump()
    wait_for(client, run_id)
    pump()
    # THEN the live one got everything, and the gone one's connection and subscription are deleted
    assert posted().messages("here")[-1]["type"] == "run"
    assert aws.table.get_item(Key={"pk": "CONN#gone", "sk": "CONN"}).get("Item") is None
    assert aws.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "SUB#gone"}).get("Item") is None


def test_disconnect_removes_the_connection_and_its_subscriptions(
    aws: Services, client: Client, ws: tuple[WebSocketHandler, Frames]
) -> None:
    handler, _ = ws
    graph_id = seed_graph(aws, succeed())
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    connect(handler)
    handler(ws_event("subscribe", body={"action": "subscribe", "run_id": run_id}))
    item = aws.table.get_item(Key={"pk": "CONN#c1", "sk": "CONN"})["Item"]
    assert item["runs"] == {run_id} and int(item["expires_at"]) > 0
    # WHEN the client disconnects
    assert handler(ws_event("$disconnect"))["statusCode"] == 200
    # THEN nothing of it is left
    assert aws.table.get_item(Key={"pk": "CONN#c1", "sk": "CONN"}).get("Item") is None
    assert aws.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "SUB#c1"}).get("Item") is None
