"""Live runs over the WebSocket API of the local cloud: real sockets, the real stream function.

A client connects to ``cloud.serve_websockets()`` with the API key, subscribes to a run, and must get
every event of the run exactly once, in ``seq`` order, then one ``run`` message; under load too (20
subscribers of one run, 50 runs at once with a subscriber each). Bad input gets an ``error`` frame or
a refused connection.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from functional_support import start_run, wait_for_run
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud


def spec(*nodes: dict[str, Any], name: str = "live") -> dict[str, Any]:
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"name": name, "nodes": list(nodes), "edges": edges}


def echo(node_id: str) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.echo", "params": {"node": node_id}}


@pytest.fixture
def ws_url(cloud: LocalCloud) -> str:
    return cloud.serve_websockets()


def open_socket(url: str, key: str | None) -> ClientConnection:
    headers = {"x-api-key": key} if key else {}
    return connect(url, additional_headers=headers, open_timeout=10)


def follow(socket: ClientConnection, run_id: str, after: int = 0, timeout: float = 60) -> list[dict[str, Any]]:
    """Subscribe and read until the ``run`` message; every message received."""
    socket.send(json.dumps({"action": "subscribe", "run_id": run_id, "after": after}))
    return read_until_run(socket, timeout)


def read_until_run(socket: ClientConnection, timeout: float = 60) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        messages.append(message)
        if message["type"] in ("run", "error"):
            return messages


def api_events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(f"/runs/{run_id}/events", params={"after": after}).json()
        out.extend(page["events"])
        if page["next"] is None:
            return out
        if not page["events"]:
            time.sleep(0.02)
        after = page["next"]


def assert_exactly_the_log(messages: list[dict[str, Any]], log: list[dict[str, Any]], run: dict[str, Any]) -> None:
    """Every event of the run once, in seq order, then one final ``run`` message with the run's status."""
    events = [m["event"] for m in messages if m["type"] == "event"]
    assert [e["seq"] for e in events] == [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert [(e["type"], e["node"], e["attempt"]) for e in events] == [(e["type"], e["node"], e["attempt"]) for e in log]
    assert messages[-1] == {"type": "run", "run_id": run["run_id"], "status": run["status"], "error": run["error"]}
    assert len(messages) == len(events) + 1


def test_a_subscriber_gets_every_event_once_in_order_then_the_run(
    cloud: LocalCloud, api: httpx.Client, ws_url: str
) -> None:
    # GIVEN a run of three nodes, the middle one slow, and a client that subscribes while it runs
    slow = {"id": "slow", "tool": "util.sleep", "params": {"seconds": 0.5}}
    run_id = start_run(api, spec(echo("first"), slow, echo("last")))
    with open_socket(ws_url, cloud.api_key) as socket:
        # WHEN it follows the run
        messages = follow(socket, run_id)
    run = wait_for_run(api, run_id, cloud=cloud)
    # THEN it got exactly the run's log, numbered 1, 2, 3..., then the final run message
    assert run["status"] == "SUCCEEDED"
    log = api_events(api, run_id)
    assert [e["type"] for e in log][:2] == ["RUN_STARTED", "NODE_STARTED"] and log[-1]["type"] == "RUN_SUCCEEDED"
    assert_exactly_the_log(messages, log, run)
    assert {"seq", "at", "type", "node", "iteration", "attempt", "message"} <= set(messages[1]["event"])


def test_a_late_subscriber_with_after_gets_the_rest(cloud: LocalCloud, api: httpx.Client, ws_url: str) -> None:
    # GIVEN a finished run
    run_id = start_run(api, spec(echo("a"), echo("b")))
    run = wait_for_run(api, run_id, cloud=cloud)
    log = api_events(api, run_id)
    # WHEN a client subscribes after the end, having seen the first three events
    with open_socket(ws_url, cloud.api_key) as socket:
        messages = follow(socket, run_id, after=3)
    # THEN it gets events 4.. and the run message
    assert [m["event"]["seq"] for m in messages if m["type"] == "event"] == [e["seq"] for e in log[3:]]
    assert messages[-1]["type"] == "run" and messages[-1]["status"] == run["status"]


def test_a_run_nobody_follows_costs_the_stream_function_no_subscription_lookup(
    cloud: LocalCloud, api: httpx.Client, ws_url: str
) -> None:
    # GIVEN a run nobody subscribes to, and one followed from its start
    before = len(cloud.iam.calls)
    alone = start_run(api, spec(echo("a"), echo("b"), name="alone"))
    wait_for_run(api, alone, cloud=cloud)
    cloud.drain_events()
    lookups = [c for c in cloud.iam.calls[before:] if c.principal == "StreamFunction" and c.action.endswith(":Query")]
    followed = start_run(api, spec(echo("a"), {"id": "slow", "tool": "util.sleep", "params": {"seconds": 0.5}}))
    with open_socket(ws_url, cloud.api_key) as socket:
        messages = follow(socket, followed)
    run = wait_for_run(api, followed, cloud=cloud)
    # WHEN the stream function has numbered both runs' events
    # THEN it looked up no subscription for the first, whose log is whole, and the second's subscriber got it all
    assert lookups == []
    assert [e["seq"] for e in api_events(api, alone)] == list(range(1, 7))
    assert_exactly_the_log(messages, api_events(api, followed), run)


@pytest.mark.parametrize("key", [None, "wrong"], ids=["missing", "wrong"])
def test_a_connection_without_the_key_is_refused(cloud: LocalCloud, ws_url: str, key: str | None) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_socket(ws_url, key)
    assert refused.value.response.status_code == 401


def test_the_key_may_come_in_the_query_string(cloud: LocalCloud, ws_url: str) -> None:
    with connect(f"{ws_url}?api_key={cloud.api_key}", open_timeout=10) as socket:
        socket.send(json.dumps({"action": "subscribe", "run_id": "r_0000000000000000"}))
        assert json.loads(socket.recv(timeout=10))["error"]["code"] == "not_found"


def test_bad_frames_get_error_frames_and_the_connection_stays_usable(
    cloud: LocalCloud, api: httpx.Client, ws_url: str
) -> None:
    run_id = start_run(api, spec(echo("a")))
    bad: list[str | bytes] = [
        "not json",
        "[1]",
        json.dumps({"action": "dance"}),
        json.dumps({"action": "subscribe", "run_id": "r_00000000000000zz"}),
        json.dumps({"action": "subscribe", "run_id": "r_0000000000000000"}),
        json.dumps({"action": "subscribe", "run_id": run_id, "after": "soon"}),
        json.dumps({"action": "unsubscribe", "run_id": run_id}),
        b"\x00\x01binary",
        json.dumps({"action": "subscribe", "run_id": run_id, "pad": "x" * 20_000}),
        "[" * 4000 + "]" * 4000,  # under the size limit, deeper than Python's parser goes
    ]
    with open_socket(ws_url, cloud.api_key) as socket:
        codes = []
        for frame in bad:
            socket.send(frame)
            reply = json.loads(socket.recv(timeout=10))
            assert reply["type"] == "error", reply
            codes.append(reply["error"]["code"])
        # THEN each got its error, and a good subscribe on the same connection still works
        assert codes == ["bad_request"] * 4 + ["not_found", "bad_request", "not_found"] + ["bad_request"] * 3
        messages = follow(socket, run_id)
    assert messages[-1]["type"] == "run"


def test_an_oversized_frame_closes_that_connection_only(cloud: LocalCloud, api: httpx.Client, ws_url: str) -> None:
    run_id = start_run(api, spec(echo("a")))
    with open_socket(ws_url, cloud.api_key) as big, open_socket(ws_url, cloud.api_key) as other:
        big.send("x" * (200 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            big.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # the server's "message too big"
        assert follow(other, run_id)[-1]["type"] == "run"


def test_a_vanished_subscriber_delays_neither_the_run_nor_another_subscriber(
    cloud: LocalCloud, api: httpx.Client, ws_url: str
) -> None:
    # GIVEN two subscribers of a slow run, one of which disappears without closing
    slow = {"id": "slow", "tool": "util.sleep", "params": {"seconds": 0.5}}
    run_id = start_run(api, spec(echo("a"), slow, echo("b")))
    with open_socket(ws_url, cloud.api_key) as vanishing, open_socket(ws_url, cloud.api_key) as staying:
        vanishing.send(json.dumps({"action": "subscribe", "run_id": run_id}))
        staying.send(json.dumps({"action": "subscribe", "run_id": run_id}))
        vanishing.socket.close()  # the client's machine went away: no close frame
        messages = read_until_run(staying)
    run = wait_for_run(api, run_id, cloud=cloud)
    # THEN the run and the other subscriber got everything; the vanished connection is cleaned up
    assert run["status"] == "SUCCEEDED"
    assert_exactly_the_log(messages, api_events(api, run_id), run)
    deadline = time.monotonic() + 10
    while cloud.websockets is not None and len(cloud.websockets.connections) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud.websockets is not None and cloud.websockets.connections == []


def test_under_load_twenty_subscribers_of_one_run_and_fifty_runs_at_once(
    cloud: LocalCloud, api: httpx.Client, ws_url: str
) -> None:
    # GIVEN 20 subscribers joining one running run at different moments
    slow = {"id": "slow", "tool": "util.sleep", "params": {"seconds": 1}}
    shared = start_run(api, spec(echo("a"), slow, echo("b"), name="shared"))
    stack = contextlib.ExitStack()
    sockets = []
    for _ in range(20):
        socket = stack.enter_context(open_socket(ws_url, cloud.api_key))
        socket.send(json.dumps({"action": "subscribe", "run_id": shared, "after": 0}))
        sockets.append(socket)
        time.sleep(0.02)
    # AND 50 runs started at once, each followed by its own subscriber
    graph = api.post("/graphs", json=spec(echo("x"), echo("y"), name="many")).json()["graph_id"]
    runs: list[str] = []
    followers: list[ClientConnection] = []
    for _ in range(50):
        run_id = api.post(f"/graphs/{graph}/runs", json={"input": {}}).json()["run_id"]
        socket = stack.enter_context(open_socket(ws_url, cloud.api_key))
        socket.send(json.dumps({"action": "subscribe", "run_id": run_id}))
        runs.append(run_id)
        followers.append(socket)

    # WHEN every subscriber reads until its run message (in parallel)
    received: dict[int, list[dict[str, Any]]] = {}

    def read(i: int, socket: ClientConnection) -> None:
        received[i] = read_until_run(socket, timeout=180)

    threads = [threading.Thread(target=read, args=(i, s)) for i, s in enumerate(sockets + followers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(200)
    stack.close()

    # THEN each received every event of its run exactly once, in seq order, then the final run message
    assert len(received) == 70
    shared_run = wait_for_run(api, shared, cloud=cloud)
    shared_log = api_events(api, shared)
    for i in range(20):
        assert_exactly_the_log(received[i], shared_log, shared_run)
    for i, run_id in enumerate(runs):
        run = wait_for_run(api, run_id, cloud=cloud)
        assert run["status"] == "SUCCEEDED"
        assert_exactly_the_log(received[20 + i], api_events(api, run_id), run)


def test_runs_watch_follows_the_websocket(
    cloud: LocalCloud, api: httpx.Client, ws_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import stepgraph_cli as cli

    # GIVEN a run with a slow middle node, and a CLI whose HTTP requests are recorded
    slow = {"id": "slow", "tool": "util.sleep", "params": {"seconds": 0.5}}
    run_id = start_run(api, spec(echo("first"), slow, echo("last")))
    paths: list[str] = []
    hooks = {"request": [lambda request: paths.append(request.url.path)]}
    with cloud.client(api_key=cloud.api_key, event_hooks=hooks) as client:
        # WHEN `stepgraph runs watch` follows it over the WebSocket API
        code = cli.main(["runs", "watch", run_id, "--ws", ws_url, "--interval", "0.05"], client=client)
    # THEN every event was shown once, the run ended SUCCEEDED, and the log was not polled for events
    out = capsys.readouterr()
    assert code == 0, out
    assert out.out.count("NODE_STARTED") == 3 and out.out.count("NODE_SUCCEEDED") == 3
    assert out.out.count("RUN_SUCCEEDED") == 1
    assert "polling" not in out.err, out.err
    assert paths.count(f"/runs/{run_id}/events") <= 1  # one read after the run message, for late log lines


def test_runs_watch_falls_back_to_polling_when_the_websocket_is_unreachable(
    cloud: LocalCloud, api: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    import stepgraph_cli as cli

    # a run still going when the watch begins (a run already ended is shown without trying the socket)
    last = {"id": "last", "tool": "util.sleep", "params": {"seconds": 0.5}}
    run_id = start_run(api, spec(echo("first"), last))
    code = cli.main(["runs", "watch", run_id, "--ws", "ws://127.0.0.1:9/", "--interval", "0.05"], client=api)
    out = capsys.readouterr()
    assert code == 0
    assert "polling" in out.err
    assert out.out.count("NODE_SUCCEEDED") == 2 and out.out.count("RUN_SUCCEEDED") == 1


def test_runs_watch_polls_on_for_the_closing_event_when_the_log_is_behind_the_run(
    cloud: LocalCloud, api: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    import stepgraph_cli as cli

    # GIVEN a run that has ended while its table stream was behind: the run says SUCCEEDED, its log is empty
    behind = contextlib.ExitStack()
    for stream in cloud.streams:
        behind.enter_context(stream.held())
    run_id = start_run(api, spec(echo("first"), echo("last")))
    assert wait_for_run(api, run_id)["status"] == "SUCCEEDED"
    assert api.get(f"/runs/{run_id}/events").json()["events"] == []
    catch_up = threading.Timer(0.5, behind.close)  # the stream catches up half a second into the watch
    catch_up.start()
    try:
        # WHEN `stepgraph runs watch` polls it
        code = cli.main(["runs", "watch", run_id, "--poll", "--interval", "0.05"], client=api)
    finally:
        catch_up.cancel()
        behind.close()
    # THEN it polls on until the log holds the closing event, and shows every event once
    out = capsys.readouterr()
    assert code == 0, out
    assert out.out.count("NODE_SUCCEEDED") == 2 and out.out.count("RUN_SUCCEEDED") == 1
