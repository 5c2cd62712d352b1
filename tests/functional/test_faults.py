"""Fault injection through the local cloud: crashes, timeouts, throttling, cancel mid fan-out, duplicates.

Faults are injected where they happen in AWS, never by mocking our code: the executor function is
wrapped in the Lambda dispatcher (a runtime crash, a second delivery of the same invocation), its
``Timeout`` is lowered in the dispatcher (Lambda kills the invocation), DynamoDB answers one write with
``ProvisionedThroughputExceededException`` through a botocore ``before-call`` handler, the execution is
stopped through the API, and the status-change rule delivers its event again. The stream function that
numbers events is faulted the same way (its DynamoDB writes throttled, its runtime killed mid-batch).
For each: the run ends in the right terminal status, no event is duplicated or lost, events are
numbered 1, 2, 3... without gaps, no terminal status is overwritten, and the API reports it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from functional_support import start_run, wait_execution, wait_for_run

from functions.executor.handler import get_executor
from functions.live.stream_handler import get_processor

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from local.cloud import LocalCloud

RETRY_ONCE = {"max_attempts": 1, "interval_seconds": 1, "backoff_rate": 1.0}


# ---------------------------------------------------------------------------------------------- helpers


def chain(*nodes: dict[str, Any], name: str = "faults") -> dict[str, Any]:
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"name": name, "nodes": list(nodes), "edges": edges}


def echo(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.echo", "params": {"node": node_id}, **extra}


def wait(cloud: LocalCloud, api: httpx.Client, run_id: str, timeout: float = 30) -> dict[str, Any]:
    """The run once terminal and its status-change event handled."""
    return wait_for_run(api, run_id, timeout, cloud=cloud)


def events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    url = f"/runs/{run_id}/events"
    while True:
        body = api.get(url).json()
        out.extend(body["events"])
        if not body["next"]:
            return out
        url = f"/runs/{run_id}/events?after={body['next']}"


def assert_log_consistent(
    run: dict[str, Any],
    log: list[dict[str, Any]],
    *,
    every_attempt_started: bool = True,
    foreach: tuple[str, ...] = (),
) -> None:
    """No event twice; one RUN_* event matching the run; each node's outcome event matches its record.

    Nodes that never ran (SKIPPED on a failed run, shown by the API without a record) and nodes the run's
    end CANCELLED carry no event of their own (the event log has no NODE_CANCELLED type); they may not
    carry a contrary one. ``every_attempt_started``: each attempt the record counts has its NODE_STARTED
    (false when an attempt failed before it could record anything, e.g. its first write was refused);
    ``foreach`` nodes are started once, by their first item.
    """
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1)), "events not numbered 1, 2, 3... in order"
    keys = Counter((e["type"], e["node"], e.get("attempt"), e.get("iteration")) for e in log if e["type"] != "LOG")
    assert [k for k, n in keys.items() if n > 1] == [], "duplicated events"
    run_events = [e["type"] for e in log if e["type"].startswith("RUN_") and e["type"] != "RUN_STARTED"]
    final = {
        "SUCCEEDED": "RUN_SUCCEEDED",
        "FAILED": "RUN_FAILED",
        "CANCELLED": "RUN_CANCELLED",
        "TIMED_OUT": "RUN_TIMED_OUT",
    }[run["status"]]
    assert run_events == [final]
    assert [e["type"] for e in log].count("RUN_STARTED") == 1
    for node, record in run["nodes"].items():
        outcome = [
            e["type"]
            for e in log
            if e["node"] == node and e["type"] in ("NODE_SUCCEEDED", "NODE_FAILED", "NODE_SKIPPED", "NODE_CANCELLED")
        ]
        if record["status"] in ("SUCCEEDED", "FAILED"):
            assert outcome == [f"NODE_{record['status']}"], (node, record["status"], outcome)
        elif record["status"] in ("SKIPPED", "CANCELLED"):
            assert outcome in ([], [f"NODE_{record['status']}"]), (node, record["status"], outcome)
        else:
            assert outcome == [], (node, record["status"], outcome)
        started = {e["attempt"] for e in log if e["node"] == node and e["type"] == "NODE_STARTED"}
        if node in foreach:  # started once by its first item; item retries are not attempts of the node
            assert started == {1}, (node, started)
        elif record["attempts"] and every_attempt_started:
            assert started == set(range(1, record["attempts"] + 1)), (node, record["attempts"], started)
        elif record["attempts"]:
            assert record["attempts"] in started and started <= set(range(1, record["attempts"] + 1)), started


def wrap_executor(
    cloud: LocalCloud,
    wrapper: Callable[[Callable[[Any, Any], Any], Any, Any], Any],
    logical_id: str = "ExecutorFunction",
) -> None:
    """Serve the executor function (or ``logical_id``) through ``wrapper(real_handler, event, context)``."""
    function = cloud.dispatcher.resolve(cloud.function_name(logical_id))
    assert function is not None
    real = function.load()
    function.handler = lambda event, context: wrapper(real, event, context)


@pytest.fixture
def store_hooks(cloud: LocalCloud) -> Any:
    """``hook(event_name, handler)`` on the executor's DynamoDB client, removed when the test ends.

    The executor (and its client) outlives a test's local cloud, so its handlers must not.
    """
    yield from _hooks(get_executor().records.table.meta.client.meta.events)


@pytest.fixture
def stream_hooks(cloud: LocalCloud) -> Any:
    """``hook(event_name, handler)`` on the stream function's DynamoDB client, removed when the test ends."""
    yield from _hooks(get_processor().log.table.meta.client.meta.events)


def _hooks(events_: Any) -> Any:
    added: list[tuple[str, str]] = []

    def hook(event_name: str, handler: Callable[..., Any]) -> None:
        unique_id = f"fault-{len(added)}-{id(handler)}"
        events_.register(event_name, handler, unique_id=unique_id)
        added.append((event_name, unique_id))

    yield hook
    for event_name, unique_id in added:
        events_.unregister(event_name, unique_id=unique_id)


def node_of(event: Any) -> str | None:
    return event.get("node") if isinstance(event, dict) else None


# ---------------------------------------------------------------------------------------------- crashes


class RuntimeExitError(Exception):
    """What Lambda reports when the runtime process dies mid-invocation (out of memory, a signal)."""


RuntimeExitError.__name__ = "Runtime.ExitError"


class _Killed(BaseException):
    """Raised inside the executor at the moment of the crash; nothing in the process may handle it."""


def crash_after_the_tool(
    cloud: LocalCloud, hook: Any, node: str, times: int = 1, index: int | None = None
) -> list[int]:
    """The process dies after ``node``'s tool ran (for ``foreach`` item ``index``, if given), before its
    success is recorded, ``times`` times."""
    crashes: list[int] = []
    armed = threading.local()

    def on_write(params: dict[str, Any], **_: Any) -> None:
        # the write that records the tool's output (a node's success, or a batch of items')
        body = _body(params)
        if getattr(armed, "on", False) and (
            "output_json" in str(body.get("UpdateExpression", "")) or "RequestItems" in body
        ):
            raise _Killed

    hook("before-call.dynamodb.UpdateItem", on_write)
    hook("before-call.dynamodb.BatchWriteItem", on_write)

    def wrapper(real: Callable[[Any, Any], Any], event: Any, context: Any) -> Any:
        # a foreach item runs in the batch that starts at it (batches hold one item each for short lists)
        targeted = index is None or (isinstance(event, dict) and index in (event.get("index"), event.get("start")))
        armed.on = node_of(event) == node and targeted and len(crashes) < times
        try:
            return real(event, context)
        except _Killed:
            crashes.append(1)
            raise RuntimeExitError("Runtime exited with error: signal: killed") from None
        finally:
            armed.on = False

    wrap_executor(cloud, wrapper)
    return crashes


def _body(params: dict[str, Any]) -> Any:
    body = params.get("body") or b"{}"
    return json.loads(body if isinstance(body, str | bytes) else body.read())


def test_a_crash_mid_node_is_retried_by_the_node_policy_and_the_run_succeeds(
    cloud: LocalCloud, api: httpx.Client, store_hooks: Any
) -> None:
    # GIVEN a chain whose middle node may be retried once, and a process that dies after its tool ran
    crashes = crash_after_the_tool(cloud, store_hooks, "middle")
    run_id = start_run(api, chain(echo("first"), echo("middle", retry=RETRY_ONCE), echo("last")))
    # WHEN the run goes on
    run = wait(cloud, api, run_id)
    # THEN the crash happened once, the retry ran the node again, and the run SUCCEEDED
    assert crashes == [1]
    assert run["status"] == "SUCCEEDED", run
    middle = run["nodes"]["middle"]
    assert (middle["status"], middle["attempts"], middle["output"]) == ("SUCCEEDED", 2, {"node": "middle"})
    assert run["nodes"]["last"]["status"] == "SUCCEEDED"
    assert_log_consistent(run, events(api, run_id))


def test_a_crash_in_one_foreach_item_is_retried_and_every_item_counts_once(
    cloud: LocalCloud, api: httpx.Client, store_hooks: Any
) -> None:
    # GIVEN a foreach over three items that may be retried once, and a process that dies after item 1 ran
    crashes = crash_after_the_tool(cloud, store_hooks, "each", index=1)
    spec = {
        "name": "crash-item",
        "nodes": [
            {
                "id": "each",
                "tool": "util.echo",
                "foreach": "{{ input.items }}",
                "params": {"value": "{{ item }}"},
                "retry": RETRY_ONCE,
                "max_concurrency": 3,
            },
            {"id": "after", "tool": "util.echo", "params": {"got": "{{ each }}"}},
        ],
        "edges": [{"from": "each", "to": "after"}],
    }
    run_id = start_run(api, spec, {"items": [10, 20, 30]})
    # WHEN the run goes on
    run = wait(cloud, api, run_id)
    # THEN the item was retried, the run SUCCEEDED, and the node's output has each item once, in order
    assert crashes == [1]
    assert run["status"] == "SUCCEEDED", run
    each = run["nodes"]["each"]
    assert each["status"] == "SUCCEEDED"
    assert each["output"] == [{"value": 10}, {"value": 20}, {"value": 30}]
    assert run["nodes"]["after"]["output"] == {"got": each["output"]}
    log = events(api, run_id)
    assert [e["type"] for e in log if e["node"] == "each"].count("NODE_SUCCEEDED") == 1
    assert_log_consistent(run, log, foreach=("each",))


def test_a_crash_without_retries_fails_the_run_with_the_runtime_error(
    cloud: LocalCloud, api: httpx.Client, store_hooks: Any
) -> None:
    # GIVEN a chain whose middle node has no retries, and a process that dies after its tool ran
    crashes = crash_after_the_tool(cloud, store_hooks, "middle")
    run_id = start_run(api, chain(echo("first"), echo("middle", retry={"max_attempts": 0}), echo("last")))
    # WHEN the run goes on
    run = wait(cloud, api, run_id)
    # THEN the run FAILED with Lambda's error for a dead runtime, on the node that was running
    assert crashes == [1]
    assert run["status"] == "FAILED", run
    assert run["error"]["code"] == "Runtime.ExitError"
    middle = run["nodes"]["middle"]
    assert middle["status"] == "FAILED"
    assert middle["error"]["code"] == "Runtime.ExitError"
    assert run["nodes"]["last"]["status"] not in ("SUCCEEDED", "RUNNING")
    assert_log_consistent(run, events(api, run_id))


@pytest.mark.parametrize(
    ("lambda_timeout", "sleep", "task_timeout", "code"),
    [(1.0, 2, 30, "Sandbox.Timedout"), (None, 2.5, 1, "States.Timeout")],
    ids=["lambda-timeout", "task-timeout"],
)
def test_a_timeout_fails_the_node_and_the_late_tool_result_overwrites_nothing(
    cloud: LocalCloud, api: httpx.Client, lambda_timeout: float | None, sleep: float, task_timeout: int, code: str
) -> None:
    # GIVEN a node, without retries, that sleeps past its executor's Lambda timeout or past its Task timeout
    if lambda_timeout is not None:
        function = cloud.dispatcher.resolve(cloud.function_name("ExecutorFunction"))
        assert function is not None
        function.timeout = lambda_timeout
    slow = {
        "id": "slow",
        "tool": "util.sleep",
        "params": {"seconds": sleep},
        "timeout_seconds": task_timeout,
        "retry": {"max_attempts": 0},
    }
    run_id = start_run(api, chain(echo("first"), slow))
    # WHEN the run ends, and the abandoned invocation's tool later finishes in the background
    run = wait(cloud, api, run_id)
    assert run["status"] == "FAILED", run
    time.sleep(2.5)
    # THEN the run and the node stay FAILED with the timeout's error; no success was recorded late
    run = api.get(f"/runs/{run_id}").json()
    assert (run["status"], run["error"]["code"]) == ("FAILED", code)
    assert (run["nodes"]["slow"]["status"], run["nodes"]["slow"]["error"]["code"]) == ("FAILED", code)
    log = events(api, run_id)
    assert [e["type"] for e in log if e["node"] == "slow"].count("NODE_SUCCEEDED") == 0
    assert_log_consistent(run, log)


# ---------------------------------------------------------------------------------------------- throttling


def throttle_once(hook: Any, operation: str, event_type: str, node: str) -> list[str]:
    """DynamoDB refuses the executor's first ``operation`` that records ``event_type`` for ``node``."""
    refused: list[str] = []
    lock = threading.Lock()

    def on_call(params: dict[str, Any], **_: Any) -> None:
        body = _body(params)
        if operation == "PutItem":
            item = body.get("Item", {})
            hit = item.get("type", {}).get("S") == event_type and item.get("node", {}).get("S") == node
        else:
            stamped = body.get("ExpressionAttributeValues", {}).get(":last_event", {}).get("S")
            event = json.loads(stamped) if stamped else {}
            hit = event.get("type") == event_type and event.get("node") == node
        with lock:
            if not hit or refused:
                return
            refused.append(f"{operation} {event_type}")
        message = "The level of configured provisioned throughput for the table was exceeded."
        error: Any = {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        raise ClientError(error, operation)

    hook(f"before-call.dynamodb.{operation}", on_call)
    return refused


@pytest.mark.parametrize(
    ("writer", "operation", "event_type"),
    [
        ("executor", "UpdateItem", "NODE_STARTED"),
        ("executor", "UpdateItem", "NODE_SUCCEEDED"),
        ("stream", "PutItem", "NODE_SUCCEEDED"),
    ],
    ids=["start-update", "success-update", "stream-event-put"],
)
def test_a_throttled_record_write_is_retried_and_nothing_is_lost_or_doubled(
    cloud: LocalCloud,
    api: httpx.Client,
    store_hooks: Any,
    stream_hooks: Any,
    writer: str,
    operation: str,
    event_type: str,
) -> None:
    # GIVEN a chain whose middle node may be retried once, and DynamoDB throttling one of its record writes
    # (the executor's node write, or the stream function's numbered event)
    refused = throttle_once(store_hooks if writer == "executor" else stream_hooks, operation, event_type, "middle")
    run_id = start_run(api, chain(echo("first"), echo("middle", retry=RETRY_ONCE), echo("last")))
    # WHEN the run goes on
    run = wait(cloud, api, run_id)
    # THEN the write was refused once, the run SUCCEEDED, and the node's record and events are whole
    assert refused == [f"{operation} {event_type}"]
    assert run["status"] == "SUCCEEDED", run
    middle = run["nodes"]["middle"]
    assert middle["status"] == "SUCCEEDED"
    assert middle["output"] == {"node": "middle"}
    log = events(api, run_id)
    assert [e["type"] for e in log if e["node"] == "middle"].count("NODE_SUCCEEDED") == 1
    # (a refused first write leaves that attempt without any event of its own: nothing could be recorded)
    assert_log_consistent(run, log, every_attempt_started=event_type != "NODE_STARTED")


def test_a_stream_function_killed_mid_batch_is_retried_and_numbers_every_event_once(
    cloud: LocalCloud, api: httpx.Client, stream_hooks: Any
) -> None:
    # GIVEN a stream function whose runtime dies once, after it numbered the first event of a batch
    crashes: list[int] = []
    armed = threading.local()

    def on_put(params: dict[str, Any], **_: Any) -> None:
        if getattr(armed, "on", False) and not crashes and _body(params).get("Item", {}).get("seq"):
            armed.put = True

    def on_counter(params: dict[str, Any], **_: Any) -> None:
        if getattr(armed, "put", False) and not crashes:
            raise _Killed

    stream_hooks("before-call.dynamodb.PutItem", on_put)
    stream_hooks("before-call.dynamodb.UpdateItem", on_counter)

    def wrapper(real: Callable[[Any, Any], Any], event: Any, context: Any) -> Any:
        armed.on, armed.put = True, False
        try:
            return real(event, context)
        except _Killed:
            crashes.append(1)
            raise RuntimeExitError("Runtime exited with error: signal: killed") from None
        finally:
            armed.on = armed.put = False

    wrap_executor(cloud, wrapper, "StreamFunction")
    # WHEN a run goes on (its events are numbered through the crash and the mapping's retry)
    run_id = start_run(api, chain(echo("first"), echo("middle"), echo("last")))
    run = wait(cloud, api, run_id)
    # THEN the crash happened, and the log is whole: each event once, numbered without gaps
    assert crashes == [1]
    assert run["status"] == "SUCCEEDED", run
    log = events(api, run_id)
    assert [e["type"] for e in log].count("NODE_SUCCEEDED") == 3
    assert_log_consistent(run, log)


def refuse_first_invoke(cloud: LocalCloud, node: str, code: str) -> list[str]:
    """Lambda refuses the first invoke of the executor for ``node`` with ``code``: the function never runs."""
    refused: list[str] = []
    executor = cloud.function_name("ExecutorFunction")

    def refuse(function: str, body: bytes) -> str | None:
        if function != executor or refused or json.loads(body or b"{}").get("node") != node:
            return None
        refused.append(code)
        return code

    cloud.dispatcher.refuse = refuse
    return refused


def test_a_throttled_invoke_is_retried_by_the_service_rule_and_spends_none_of_the_nodes_retries(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    # GIVEN a node that may be retried once and fails its first run, whose first invoke Lambda throttles
    refused = refuse_first_invoke(cloud, "middle", "TooManyRequestsException")
    flaky = {"id": "middle", "tool": "util.fail", "params": {"failures": 2}, "retry": RETRY_ONCE}
    run_id = start_run(api, chain(echo("first"), flaky, echo("last")))
    # WHEN the run goes on
    run = wait(cloud, api, run_id)
    # THEN the service rule retried the throttled invoke, the node's own retry the failure, and both
    # the run and the node SUCCEEDED (the throttle did not make the executor call the failure final)
    assert refused == ["TooManyRequestsException"]
    assert run["status"] == "SUCCEEDED", run
    middle = run["nodes"]["middle"]
    assert middle["status"] == "SUCCEEDED", middle
    assert middle["output"] == {"attempt": 3}
    log = events(api, run_id)
    assert [(e["type"], e["attempt"]) for e in log if e["node"] == "middle" and e["type"].startswith("NODE_")] == [
        ("NODE_STARTED", 2),
        ("NODE_RETRYING", 2),
        ("NODE_STARTED", 3),
        ("NODE_SUCCEEDED", 3),
    ]
    assert_log_consistent(run, log, every_attempt_started=False)


# ---------------------------------------------------------------------------------------------- cancel


def test_stop_execution_in_the_middle_of_a_fan_out(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a fan-out whose four branches sleep 1.5 s
    branches = [f"b{i}" for i in range(4)]
    spec = {
        "name": "cancel-fan-out",
        "nodes": [
            echo("root"),
            *({"id": b, "tool": "util.sleep", "params": {"seconds": 1.5}} for b in branches),
            echo("join"),
        ],
        "edges": [*({"from": "root", "to": b} for b in branches), *({"from": b, "to": "join"} for b in branches)],
        "options": {"max_concurrency": 4},
    }
    run_id = start_run(api, spec)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # until a branch is running
        run = api.get(f"/runs/{run_id}").json()
        if any(run["nodes"].get(b, {}).get("status") == "RUNNING" for b in branches):
            break
        time.sleep(0.05)
    assert any(run["nodes"].get(b, {}).get("status") == "RUNNING" for b in branches), run
    # WHEN the run is cancelled (StopExecution) while branches sleep, and the branches' tools finish later
    cancelled = api.post(f"/runs/{run_id}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    run = wait(cloud, api, run_id)
    time.sleep(2)
    # THEN the run is CANCELLED and stays so; running branches are CANCELLED, not overwritten by late results
    run = api.get(f"/runs/{run_id}").json()
    assert run["status"] == "CANCELLED", run
    assert run["nodes"]["root"]["status"] == "SUCCEEDED"
    statuses = {b: run["nodes"][b]["status"] for b in branches if b in run["nodes"]}
    assert statuses and set(statuses.values()) <= {"CANCELLED", "PENDING"}, statuses
    assert "CANCELLED" in statuses.values()
    assert run["nodes"].get("join", {}).get("status") in (None, "PENDING", "CANCELLED")
    assert_log_consistent(run, events(api, run_id))
    # AND cancelling again is a conflict
    assert api.post(f"/runs/{run_id}/cancel").status_code == 409


# ---------------------------------------------------------------------------------------------- duplicates


@pytest.mark.parametrize("overlap", [False, True], ids=["one-after-the-other", "at-the-same-time"])
def test_the_same_invocation_delivered_twice_records_once(cloud: LocalCloud, api: httpx.Client, overlap: bool) -> None:
    # GIVEN an executor that receives the invocation of "middle" twice (at-least-once delivery)
    deliveries: list[str] = []

    def twice(real: Callable[[Any, Any], Any], event: Any, context: Any) -> Any:
        if node_of(event) != "middle":
            return real(event, context)
        if not overlap:
            deliveries.append("first")
            real(event, context)
            deliveries.append("second")
            return real(event, context)
        results: dict[int, Any] = {}
        errors: list[BaseException] = []

        def deliver(n: int) -> None:
            try:
                results[n] = real(event, context)
            except Exception as exc:  # the loser of a race may answer with an error: Step Functions sees one
                errors.append(exc)

        threads = [threading.Thread(target=deliver, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deliveries.extend(["concurrent"] * 2)
        assert results, errors
        return results[min(results)]

    wrap_executor(cloud, twice)
    run_id = start_run(
        api,
        chain(echo("first"), {"id": "middle", "tool": "util.echo", "params": {"v": "{{ first.node }}"}}, echo("last")),
    )
    # WHEN the run goes on
    run = wait(cloud, api, run_id)
    # THEN both deliveries happened, the run SUCCEEDED once, and "middle" has one attempt and one of each event
    assert len(deliveries) == 2
    assert run["status"] == "SUCCEEDED", run
    middle = run["nodes"]["middle"]
    assert (middle["status"], middle["attempts"], middle["output"]) == ("SUCCEEDED", 1, {"v": "first"})
    log = events(api, run_id)
    assert [e["type"] for e in log if e["node"] == "middle"] == ["NODE_STARTED", "NODE_SUCCEEDED"]
    assert_log_consistent(run, log)


def test_the_same_status_event_delivered_twice_and_a_late_contrary_one_change_nothing(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    # GIVEN a run that SUCCEEDED and whose status-change event was handled
    run_id = start_run(api, chain(echo("first"), echo("second")))
    run = wait(cloud, api, run_id)
    assert run["status"] == "SUCCEEDED"
    [delivered] = [e for e in cloud.bus.events if e["detail"]["name"] == run_id]
    # WHEN EventBridge delivers the same event again, then a FAILED event for the same execution
    cloud.bus.put(delivered)
    contrary = json.loads(json.dumps(delivered))
    contrary["id"] = "late-contrary-event"
    contrary["detail"].update(status="FAILED", error="Late", cause="a stale event", output=None)
    cloud.bus.put(contrary)
    assert cloud.drain_events(10)
    # THEN both were delivered and handled, and the run, its nodes and its log are as before
    handled = [d for d in cloud.bus.deliveries if d.event["detail"]["name"] == run_id]
    assert len(handled) == 3 and all(d.delivered for d in handled)
    assert [d.result.json()["settled"] for d in handled[1:] if d.result] == [False, False]
    after = api.get(f"/runs/{run_id}").json()
    assert after == run
    log = events(api, run_id)
    assert [e["type"] for e in log if e["type"].startswith("RUN_")] == ["RUN_STARTED", "RUN_SUCCEEDED"]
    assert_log_consistent(after, log)


@pytest.mark.parametrize("failures", [1, 99], ids=["fails-once", "always-fails"])
def test_a_failing_status_change_handler_is_retried_and_reads_reconcile_when_it_never_succeeds(
    cloud: LocalCloud, api: httpx.Client, failures: int
) -> None:
    # GIVEN an events function that crashes on its first ``failures`` deliveries
    function = cloud.dispatcher.resolve(cloud.function_name("EventsFunction"))
    assert function is not None
    real = function.load()
    crashed: list[str] = []

    def flaky(event: Any, context: Any) -> Any:
        if len(crashed) < failures:
            crashed.append(event["detail"]["name"])
            raise RuntimeExitError("Runtime exited with error: signal: killed")
        return real(event, context)

    function.handler = flaky
    created = api.post("/graphs", json=chain(echo("first"), echo("second"))).json()
    started = api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {}}).json()
    # WHEN the execution ends and EventBridge delivers its status change (no API read in between)
    wait_execution(started["execution_arn"], 20)
    assert cloud.drain_events(10)
    [delivery] = [d for d in cloud.bus.deliveries if d.event["detail"]["name"] == started["run_id"]]
    # THEN a crash once is retried (two attempts, delivered); always crashing ends in the dead-letter queue
    if failures == 1:
        assert (delivery.attempts, delivery.delivered) == (2, True)
    else:
        assert not delivery.delivered and delivery in cloud.bus.dead_letters
    # AND either way the API reports the run SUCCEEDED (a read reconciles with DescribeExecution), logged once
    run = api.get(f"/runs/{started['run_id']}").json()
    assert run["status"] == "SUCCEEDED", run
    log = events(api, started["run_id"])
    assert [e["type"] for e in log if e["type"].startswith("RUN_")] == ["RUN_STARTED", "RUN_SUCCEEDED"]
    assert_log_consistent(run, log)


def test_the_same_status_event_delivered_many_times_at_once_with_reads_settles_once(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    # GIVEN a finished run whose status change was not handled yet (the events function was down)
    function = cloud.dispatcher.resolve(cloud.function_name("EventsFunction"))
    assert function is not None
    real = function.load()

    def down(event: Any, context: Any) -> Any:
        raise RuntimeExitError("Runtime exited with error: signal: killed")

    function.handler = down
    spec = {
        "name": "settle-race",
        "nodes": [echo("first"), echo("maybe"), echo("last")],
        "edges": [{"from": "first", "to": "maybe", "when": "input.go == True"}, {"from": "first", "to": "last"}],
    }
    created = api.post("/graphs", json=spec).json()
    started = api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {"go": False}}).json()
    wait_execution(started["execution_arn"], 20)
    assert cloud.drain_events(10)
    [lost] = [d.event for d in cloud.bus.dead_letters if d.event["detail"]["name"] == started["run_id"]]
    function.handler = real
    # WHEN the event is delivered eight times at once while two clients read the run
    barrier = threading.Barrier(10)
    settled: list[bool] = []
    reads: list[str] = []

    def deliver() -> None:
        barrier.wait()
        settled.append(bool(cloud.invoke("EventsFunction", lost).json()["settled"]))

    def read() -> None:
        with cloud.client(api_key=cloud.api_key) as client:
            barrier.wait()
            reads.append(client.get(f"/runs/{started['run_id']}").json()["status"])

    threads = [threading.Thread(target=deliver) for _ in range(8)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # THEN at most one delivery made the change (a read may have reconciled first), every read saw the truth
    assert len(settled) == 8 and settled.count(True) <= 1
    assert reads == ["SUCCEEDED", "SUCCEEDED"]
    run = api.get(f"/runs/{started['run_id']}").json()
    assert run["status"] == "SUCCEEDED"
    assert run["nodes"]["maybe"]["status"] == "SKIPPED"
    log = events(api, started["run_id"])
    assert [e["type"] for e in log].count("RUN_SUCCEEDED") == 1
    assert [e["type"] for e in log if e["node"] == "maybe"] == ["NODE_SKIPPED"]
    assert_log_consistent(run, log)


def _refuse_once(
    client: Any, event_name: str, code: str, matches: Callable[[dict[str, Any]], bool]
) -> tuple[list[str], Callable[[], None]]:
    """Answer the first call on ``client`` that ``matches`` its request body with a ClientError ``code``;
    returns what was refused and the function that removes the handler."""
    refused: list[str] = []
    unique_id = f"refuse-once-{event_name}"

    def on_call(params: dict[str, Any], **_: Any) -> None:
        if refused or not matches(_body(params)):
            return
        refused.append(code)
        error: Any = {"Error": {"Code": code, "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        raise ClientError(error, event_name.rsplit(".", 1)[-1])

    client.meta.events.register(event_name, on_call, unique_id=unique_id)
    return refused, lambda: client.meta.events.unregister(event_name, unique_id=unique_id)


@pytest.mark.parametrize("where", ["run-record", "start-execution"])
def test_a_throttled_start_is_a_502_and_a_retry_with_the_idempotency_key_starts_one_run(
    cloud: LocalCloud, api: httpx.Client, where: str
) -> None:
    # GIVEN a graph, and AWS refusing the API's first write of a run record, or its first StartExecution
    from functions.api.services import get_services

    created = api.post("/graphs", json=chain(echo("first"), echo("second"))).json()
    services = get_services()
    if where == "run-record":
        refused, undo = _refuse_once(
            services.table.meta.client,
            "before-call.dynamodb.PutItem",
            "ProvisionedThroughputExceededException",
            lambda body: body.get("Item", {}).get("sk", {}).get("S") == "RUN",
        )
    else:
        refused, undo = _refuse_once(
            services.sfn, "before-call.states.StartExecution", "ThrottlingException", lambda body: True
        )
    try:
        # WHEN a client starts a run with an Idempotency-Key, gets the error, and retries with the same key
        headers = {"Idempotency-Key": f"retry-{where}"}
        first = api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {"n": 1}}, headers=headers)
        second = api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {"n": 1}}, headers=headers)
        third = api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {"n": 1}}, headers=headers)
    finally:
        undo()
    # THEN the retries start one run (the refused attempt's answer is checked last)
    assert refused
    assert second.status_code == 202, second.text
    assert third.status_code == 202 and third.json()["run_id"] == second.json()["run_id"]
    run = wait(cloud, api, second.json()["run_id"])
    assert run["status"] == "SUCCEEDED"
    sfn = boto3.client("stepfunctions", region_name=cloud.region)
    executions = sfn.list_executions(stateMachineArn=created["state_machine_arn"])["executions"]
    assert [e["name"] for e in executions] == [second.json()["run_id"]]
    # AND no run of the graph is left RUNNING: a refused start is either unrecorded or recorded FAILED
    listed = api.get("/runs", params={"graph_id": created["graph_id"]}).json()
    statuses = sorted(r["status"] for r in listed.get("runs", listed.get("items", [])))
    assert statuses in (["SUCCEEDED"], ["FAILED", "SUCCEEDED"]), listed
    assert_log_consistent(run, events(api, run["run_id"]))
    # AND the refused attempt was a 502 "try again" in the documented error shape (an AWS call failed)
    assert set(first.json()) == {"error"} and first.json()["error"]["code"]
    assert first.status_code == 502, first.text
