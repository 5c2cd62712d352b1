"""Node items and run events: idempotent status changes, events deduplicated, cursor paging."""

from __future__ import annotations

from typing import Any

import pytest

from functions.store.events import EventLog, EventOrderError
from functions.store.records import Records
from functions.store.table import event_sk, run_pk
from tests.unit.table_stream import pump

RUN = "r_0123456789abcdef"


def events(records: Records, run_id: str = RUN) -> list[dict[str, Any]]:
    pump()
    return EventLog(records.table).page(run_id, limit=1000).events


def test_a_successful_attempt_records_started_then_succeeded(table: Any) -> None:
    # GIVEN the store
    records = Records(table)

    # WHEN an attempt starts and succeeds
    assert records.start_attempt(RUN, "fetch", 1, 1, tool="util.echo").started
    assert records.succeed_attempt(RUN, "fetch", 1, 1, output={"a": 1}, tool_ms=5)

    # THEN the node item is SUCCEEDED with its output and timings, and two events were written in order
    node = records.get_node(RUN, "fetch", 1)
    assert node is not None
    assert (node.status, node.attempts, node.iteration, node.output, node.error) == ("SUCCEEDED", 1, 1, {"a": 1}, None)
    assert node.started_at is not None and node.finished_at is not None and node.started_at <= node.finished_at
    assert node.duration_ms is not None and node.duration_ms >= 0
    assert node.tool == "util.echo"
    assert [(e["type"], e["node"], e["attempt"]) for e in events(records)] == [
        ("NODE_STARTED", "fetch", 1),
        ("NODE_SUCCEEDED", "fetch", 1),
    ]


def test_a_redelivered_start_writes_nothing_and_returns_the_item(table: Any) -> None:
    # GIVEN attempt 1 already started
    records = Records(table)
    records.start_attempt(RUN, "fetch", 1, 1, tool="util.echo")

    # WHEN the same attempt is delivered again
    again = records.start_attempt(RUN, "fetch", 1, 1, tool="util.echo")

    # THEN no second NODE_STARTED exists and the caller sees the RUNNING item
    assert not again.started
    assert again.node is not None and again.node.status == "RUNNING"
    assert [e["type"] for e in events(records)] == ["NODE_STARTED"]


def test_a_terminal_status_is_never_overwritten(table: Any) -> None:
    # GIVEN a node that succeeded on attempt 1
    records = Records(table)
    records.start_attempt(RUN, "n", 1, 1, tool="t")
    records.succeed_attempt(RUN, "n", 1, 1, output="first")

    # WHEN a duplicate delivery tries to start, succeed and fail it again
    assert not records.start_attempt(RUN, "n", 1, 1, tool="t").started
    assert not records.start_attempt(RUN, "n", 1, 2, tool="t").started
    assert not records.succeed_attempt(RUN, "n", 1, 1, output="second")
    assert not records.fail_attempt(RUN, "n", 1, 1, error={"code": "X", "message": "m"}, final=True)

    # THEN the first outcome stands and no event was added
    node = records.get_node(RUN, "n", 1)
    assert node is not None and (node.status, node.output, node.error) == ("SUCCEEDED", "first", None)
    assert [e["type"] for e in events(records)] == ["NODE_STARTED", "NODE_SUCCEEDED"]


def test_retries_then_final_failure(table: Any) -> None:
    # GIVEN a node that fails twice with one retry allowed
    records = Records(table)
    error = {"code": "UpstreamDown", "message": "down"}
    records.start_attempt(RUN, "n", 1, 1, tool="util.fail")
    assert records.fail_attempt(RUN, "n", 1, 1, error=error, final=False)
    # a redelivered failure of attempt 1 is ignored
    assert not records.fail_attempt(RUN, "n", 1, 1, error=error, final=False)
    node = records.get_node(RUN, "n", 1)
    assert node is not None and node.status == "RUNNING" and node.error == error

    # WHEN attempt 2 starts and fails for good
    assert records.start_attempt(RUN, "n", 1, 2, tool="util.fail").started
    assert records.fail_attempt(RUN, "n", 1, 2, error=error, final=True)

    # THEN the node is FAILED after 2 attempts, with the error, and the events tell the story once each
    node = records.get_node(RUN, "n", 1)
    assert node is not None
    assert (node.status, node.attempts, node.error) == ("FAILED", 2, error)
    assert node.finished_at is not None
    kinds = [(e["type"], e["attempt"]) for e in events(records)]
    assert kinds == [("NODE_STARTED", 1), ("NODE_RETRYING", 1), ("NODE_STARTED", 2), ("NODE_FAILED", 2)]
    assert "UpstreamDown" in events(records)[-1]["message"]
    assert events(records)[-1]["error"] == error


def test_keyed_events_are_written_once(table: Any) -> None:
    # GIVEN the store
    records = Records(table)

    # WHEN the same keyed LOG event is put twice, and an unkeyed one once
    assert records.put_event(RUN, "LOG", node="n", attempt=1, message="hello", key="LOG#n#1#1#0")
    assert not records.put_event(RUN, "LOG", node="n", attempt=1, message="hello", key="LOG#n#1#1#0")
    assert records.put_event(RUN, "RUN_STARTED", message="go")

    # THEN two events exist
    assert [e["type"] for e in events(records)] == ["LOG", "RUN_STARTED"]


def test_events_page_by_seq_without_gaps_or_repeats(table: Any) -> None:
    # GIVEN 25 events
    records = Records(table)
    for i in range(25):
        records.put_event(RUN, "LOG", node="n", message=f"line {i}")
    pump()

    # WHEN they are read 10 at a time following `next`
    seen: list[str] = []
    page = EventLog(records.table).page(RUN, limit=10)
    seen += [e["message"] for e in page.events]
    while page.next:
        page = EventLog(records.table).page(RUN, after=page.next, limit=10)
        seen += [e["message"] for e in page.events]

    # THEN every event came once, in order, numbered 1..25; the final cursor resumes after the last one
    assert seen == [f"line {i}" for i in range(25)]
    assert page.cursor == 25
    records.put_event(RUN, "LOG", node="n", message="late")
    pump()
    assert [(e["seq"], e["message"]) for e in EventLog(records.table).page(RUN, after=page.cursor).events] == [
        (26, "late")
    ]


def test_list_nodes_returns_each_iteration(table: Any) -> None:
    # GIVEN a loop node run twice and another node
    records = Records(table)
    for iteration in (1, 2):
        records.start_attempt(RUN, "score", iteration, 1, tool="code.score")
        records.succeed_attempt(RUN, "score", iteration, 1, output={"quality_score": iteration})
    records.start_attempt(RUN, "extract", 1, 1, tool="code.extract_functions")

    # WHEN the run's nodes are listed
    nodes = records.list_nodes(RUN)

    # THEN each (node, iteration) appears once with its own output; other runs are not mixed in
    assert [(n.node, n.iteration, n.status) for n in nodes] == [
        ("extract", 1, "RUNNING"),
        ("score", 1, "SUCCEEDED"),
        ("score", 2, "SUCCEEDED"),
    ]
    assert nodes[2].output == {"quality_score": 2}
    assert records.list_nodes("r_other") == []


class Crash(Exception):
    """Stands for the stream function dying (or a write throttled) between two writes."""


def test_the_executor_path_of_a_node_is_two_writes_and_no_read(table: Any) -> None:
    # GIVEN the store, with every DynamoDB request counted
    records = Records(table)
    calls: list[str] = []
    table.meta.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))

    # WHEN a node starts and succeeds
    records.start_attempt(RUN, "n", 1, 1, tool="t")
    records.succeed_attempt(RUN, "n", 1, 1, output={"v": 1}, tool_ms=3)

    # THEN that took two UpdateItem requests, and the events still come out numbered
    assert calls == ["UpdateItem", "UpdateItem"]
    assert [(e["seq"], e["type"]) for e in events(records)] == [(1, "NODE_STARTED"), (2, "NODE_SUCCEEDED")]


def test_a_stream_delivery_that_died_after_putting_an_event_numbers_nothing_twice(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stream delivery that put the first event of a batch, then died before moving the counter
    records = Records(table)
    records.start_attempt(RUN, "n", 1, 1, tool="t")
    records.succeed_attempt(RUN, "n", 1, 1, output={"v": 1})
    original = table.update_item
    left = [1]

    def dies_once(**kwargs: Any) -> Any:
        if kwargs.get("Key", {}).get("sk") == "SEQ" and left[0]:
            left[0] -= 1
            raise Crash
        return original(**kwargs)

    monkeypatch.setattr(table, "update_item", dies_once)

    # WHEN the event source mapping delivers the batch again (the failure was reported)
    pump()

    # THEN every event exists once, numbered without gaps
    assert [(e["seq"], e["type"]) for e in events(records)] == [(1, "NODE_STARTED"), (2, "NODE_SUCCEEDED")]


def test_an_event_number_another_writer_took_is_refused(table: Any) -> None:
    # GIVEN event 1 of the run numbered by another delivery whose counter move this one did not see
    theirs = {"pk": run_pk(RUN), "sk": event_sk(1), "seq": 1, "eid": "theirs", "type": "LOG", "at": "t", "message": "a"}
    table.put_item(Item=theirs)
    log = EventLog(table)

    # WHEN this delivery numbers a different event after the counter it read
    mine = {"eid": "mine", "type": "LOG", "at": "t", "message": "b"}

    # THEN it is refused (the batch is retried), and event 1 stays the other writer's
    with pytest.raises(EventOrderError):
        log.append(RUN, [(1, mine)])
    assert [(e["seq"], e["message"]) for e in log.page(RUN).events] == [(1, "a")]


def test_a_throttled_event_write_is_retried_in_order(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN event writes that are throttled twice
    from botocore.exceptions import ClientError

    records = Records(table)
    for i in range(5):
        records.put_event(RUN, "LOG", node="n", message=f"line {i}")
    original = table.put_item
    left = [2]

    def throttled(**kwargs: Any) -> Any:
        if str(kwargs.get("Item", {}).get("sk", "")).startswith("EVENT#") and left[0]:
            left[0] -= 1
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "PutItem")  # type: ignore[arg-type]
        return original(**kwargs)

    monkeypatch.setattr(table, "put_item", throttled)

    # WHEN the stream function runs (and is retried by the mapping)
    pump()

    # THEN the log is 1..5 in write order
    assert [(e["seq"], e["message"]) for e in events(records)] == [(i + 1, f"line {i}") for i in range(5)]


def test_a_repeated_transition_is_numbered_once(table: Any) -> None:
    # GIVEN a node failure recorded, then the same failure recorded again by another writer path
    records = Records(table)
    records.start_attempt(RUN, "n", 1, 1, tool="t")
    assert records.fail_node(RUN, "n", 1, tool="t", error={"code": "States.Timeout", "message": "late"})
    assert not records.fail_node(RUN, "n", 1, tool="t", error={"code": "States.Timeout", "message": "late"})

    # THEN NODE_FAILED is numbered once, with the attempt the item had
    assert [(e["seq"], e["type"], e["attempt"]) for e in events(records)] == [
        (1, "NODE_STARTED", 1),
        (2, "NODE_FAILED", 1),
    ]
