"""Resume at the store and executor level: which writes a resumed execution may make on a run's records.

A resumed run's execution carries its resume number (``doc.run.resumes``, the execution ``<run_id>-r<n>``):
SUCCEEDED records are replayed, never written; FAILED or unfinished ones are restarted once by the newer
execution, whose own redeliveries stay exactly-once; writes of an older execution change nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.executor.binding import execution_name, execution_problem, run_of_execution
from functions.executor.errors import NodeFailed
from functions.store.records import Records

from .helpers import RUN, document, invoke, numbered, request

ERROR = {"code": "Boom", "message": "it broke"}


def failed_node(records: Records, node: str = "c") -> None:
    assert records.start_attempt(RUN, node, 1, 1, tool="util.echo")
    assert records.fail_attempt(RUN, node, 1, 1, error=ERROR, final=True)


def test_a_resumed_execution_restarts_a_failed_node_once_and_owns_it(table: Any) -> None:
    # GIVEN a node the run's first execution left FAILED
    records = Records(table)
    failed_node(records)
    before = records.get_node(RUN, "c", 1)
    assert before is not None

    # WHEN the first resume starts it, twice (a redelivery)
    first = records.start_attempt(RUN, "c", 1, 1, tool="util.echo", resume=1)
    again = records.start_attempt(RUN, "c", 1, 1, tool="util.echo", resume=1)

    # THEN the first restarts it afresh (RUNNING, attempt 1, no error, its own start) and the redelivery writes nothing
    assert first.started and not again.started
    node = records.get_node(RUN, "c", 1)
    assert node is not None
    assert (node.status, node.attempts, node.starts, node.error, node.resume) == ("RUNNING", 1, 1, None, 1)
    assert node.finished_at is None and node.failed_attempt is None
    assert node.started_at is not None and before.started_at is not None and node.started_at >= before.started_at
    # AND it can fail and succeed again within that execution, each transition numbered as an event
    assert records.fail_attempt(RUN, "c", 1, 1, error=ERROR, final=False, resume=1)
    assert records.start_attempt(RUN, "c", 1, 2, tool="util.echo", resume=1)
    assert records.succeed_attempt(RUN, "c", 1, 2, output={"ok": True}, resume=1)
    kinds = [e["type"] for e in numbered(records)]
    assert kinds == ["NODE_STARTED", "NODE_FAILED", "NODE_STARTED", "NODE_RETRYING", "NODE_STARTED", "NODE_SUCCEEDED"]


def test_writes_of_an_older_execution_change_nothing_once_a_newer_one_restarted_the_node(table: Any) -> None:
    # GIVEN a node restarted by the first resume
    records = Records(table)
    failed_node(records)
    assert records.start_attempt(RUN, "c", 1, 1, tool="util.echo", resume=1)

    # WHEN late deliveries of the first execution try to start, fail or finish it
    late = [
        records.start_attempt(RUN, "c", 1, 2, tool="util.echo"),
        records.fail_attempt(RUN, "c", 1, 1, error=ERROR, final=True),
        records.succeed_attempt(RUN, "c", 1, 1, output={"stale": True}),
        records.fail_node(RUN, "c", 1, tool="util.echo", error=ERROR),
    ]

    # THEN none is made, and the record is still the resumed execution's
    assert [bool(outcome) for outcome in late] == [False, False, False, False]
    node = records.get_node(RUN, "c", 1)
    assert node is not None
    assert (node.status, node.attempts, node.output, node.resume) == ("RUNNING", 1, None, 1)


def test_a_succeeded_node_is_never_restarted(table: Any) -> None:
    # GIVEN a node that succeeded in the first execution
    records = Records(table)
    assert records.start_attempt(RUN, "a", 1, 1, tool="util.echo")
    assert records.succeed_attempt(RUN, "a", 1, 1, output={"v": 1}, tool_ms=3)
    kept = records.get_node(RUN, "a", 1)

    # WHEN a resumed execution starts it, and fails it as a caught failure
    start = records.start_attempt(RUN, "a", 1, 1, tool="util.echo", resume=1)
    failed = records.fail_node(RUN, "a", 1, tool="util.echo", error=ERROR, resume=1)

    # THEN nothing is written: the start answers with the record as it stands (what the executor replays)
    assert not start.started and not failed
    assert start.node is not None and start.node.status == "SUCCEEDED" and start.node.output == {"v": 1}
    assert records.get_node(RUN, "a", 1) == kept


def test_a_resumed_execution_records_a_caught_failure_of_a_node_failed_before(table: Any) -> None:
    # GIVEN a node the first execution left FAILED
    records = Records(table)
    failed_node(records)

    # WHEN the resumed execution's Catch records its failure again
    outcome = records.fail_node(RUN, "c", 1, tool="util.echo", error={"code": "Again", "message": "m"}, resume=1)

    # THEN it is recorded with a second NODE_FAILED event
    assert outcome
    node = records.get_node(RUN, "c", 1)
    assert node is not None and (node.error, node.resume) == ({"code": "Again", "message": "m"}, 1)
    assert [e["type"] for e in numbered(records)].count("NODE_FAILED") == 2


def test_a_failed_foreach_item_restarts_and_a_succeeded_one_does_not(table: Any) -> None:
    # GIVEN items 0 (succeeded) and 1 (failed) of the first execution
    records = Records(table)
    assert records.start_item(RUN, "each", 1, 0, 1, tool="util.echo")
    assert records.succeed_item(RUN, "each", 1, 0, 1, output="zero")
    assert records.start_item(RUN, "each", 1, 1, 1, tool="util.echo")
    assert records.fail_item(RUN, "each", 1, 1, 1, error=ERROR, final=True)

    # WHEN the first resume starts both
    zero = records.start_item(RUN, "each", 1, 0, 1, tool="util.echo", resume=1)
    one = records.start_item(RUN, "each", 1, 1, 1, tool="util.echo", resume=1)

    # THEN item 1 runs afresh, item 0 keeps its output
    assert not zero.started and zero.node is not None and zero.node.output == "zero"
    assert one.started
    item = records.get_item(RUN, "each", 1, 1)
    assert item is not None and (item.status, item.error, item.resume) == ("RUNNING", None, 1)


def resumed_request(node: str, resumes: int, **kwargs: Any) -> dict[str, Any]:
    doc = document()
    doc["run"] = {**doc["run"], "resumes": resumes}
    event = request(node, "util.echo", {"v": 1}, doc=doc, **kwargs)
    event["execution"] = event["execution"].rsplit(":", 1)[0] + f":{execution_name(RUN, resumes)}"
    return event


def test_the_executor_replays_a_succeeded_node_and_refuses_the_older_execution(table: Any) -> None:
    # GIVEN node a succeeded in the first execution, node c failed in it and was restarted by resume 1
    records = Records(table)
    invoke(request("a", "util.echo", {"v": 1}))
    failed_node(records)
    assert records.start_attempt(RUN, "c", 1, 1, tool="util.echo", resume=1)

    # WHEN resume 1 asks for a, and the first execution, late, asks for c
    replayed = invoke(resumed_request("a", 1))
    with pytest.raises(NodeFailed) as stale:
        invoke(request("c", "util.echo", {"v": 1}, retry_count=1))

    # THEN a's recorded output comes back without a new start, and the late request is refused
    assert replayed["results"]["a"] == {"v": 1}
    assert stale.value.code == "stepgraph.StaleAttempt"
    assert [e["node"] for e in numbered(records) if e["type"] == "NODE_STARTED"] == ["a", "c", "c"]


RUN_ARN = f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_000000000001:{RUN}"


@pytest.mark.parametrize(
    ("name", "resumes", "accepted"),
    [
        (RUN, 0, True),
        (f"{RUN}-r1", 1, True),
        (f"{RUN}-r12", 12, True),
        (f"{RUN}-r1", 0, False),
        (f"{RUN}-r2", 1, False),
        (RUN, 1, False),
        (f"{RUN}-r01", 1, False),
        ("r_ffffffffffffffff-r1", 1, False),
    ],
)
def test_an_execution_acts_for_a_run_only_under_the_name_of_its_resume(name: str, resumes: int, accepted: bool) -> None:
    run = {"run_id": RUN, "graph_id": "g_000000000001", "version": 1, "resumes": resumes}
    problem = execution_problem(RUN_ARN.rsplit(":", 1)[0] + f":{name}", run, "stepgraph")
    assert (problem is None) is accepted, problem


def test_a_resume_count_that_is_not_a_count_is_refused() -> None:
    for bad in (-1, "1", True, 1.0):
        run = {"run_id": RUN, "graph_id": "g_000000000001", "version": 1, "resumes": bad}
        assert execution_problem(f"{RUN_ARN}-r1", run, "stepgraph") is not None


def test_execution_names_read_back_as_run_and_resume() -> None:
    assert run_of_execution(execution_name(RUN, 0)) == (RUN, 0)
    assert run_of_execution(execution_name(RUN, 3)) == (RUN, 3)
    assert run_of_execution("not-a-run-r1") == ("not-a-run-r1", 0)


def test_a_replayed_offloaded_output_rebuilds_the_state_it_wrote(table: Any) -> None:
    # GIVEN a node whose large output was offloaded and written into state (update_state), in the first execution
    from functions.executor.node import NodeExecutor
    from functions.store.offload import BlobStore, Offloader

    executor = NodeExecutor(records=Records(table), offloader=Offloader(BlobStore(table), inline_limit=1024))
    text = "x" * 5000
    first = request("big", "util.echo", {"text": text}, update_state={"kept": "text"})
    ran = executor.handle(executor.parse(first))
    assert executor.offloader.genuine(ran["results"]["big"]["text"], RUN)
    assert executor.offloader.genuine(ran["state"]["kept"], RUN)

    # WHEN a resumed execution reaches it
    again = resumed_request("big", 1)
    again["ctx"], again["tool"] = first["ctx"], first["tool"]
    replayed = executor.handle(executor.parse(again))

    # THEN it answers with the recorded (referenced) output and the same state, which reads back whole
    assert replayed["results"]["big"] == ran["results"]["big"]
    assert executor.offloader.resolve(replayed["state"]["kept"], RUN) == text
    assert executor.offloader.resolve(replayed["sd"], RUN) == {"kept": text}
    assert [e["type"] for e in numbered(Records(table))] == ["NODE_STARTED", "NODE_SUCCEEDED"]
