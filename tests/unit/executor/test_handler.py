"""The executor Lambda end to end against moto's table: documents returned, records written, errors typed."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from functions.executor import handler
from functions.executor.errors import NodeFailed
from functions.executor.node import NodeExecutor
from functions.store.offload import DOC_BUDGET, BlobStore, Offloader
from functions.store.records import Records
from statemachine.jsonlimits import MAX_OUTPUT_DEPTH

from .helpers import RUN, FakeContext, document, numbered, request

if TYPE_CHECKING:
    from collections.abc import Iterator

# Node metrics use single_metric, so the decorator's own set is empty by design.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def records(table: Any) -> Iterator[Records]:
    recs = Records(table)
    handler.set_executor(
        NodeExecutor(
            records=recs,
            offloader=Offloader(BlobStore(table)),
            logger=handler.logger,
            metric=handler.emit_metric,
            span=handler.trace_span,
        )
    )
    yield recs
    handler.set_executor(None)


def invoke(event: dict[str, Any]) -> Any:
    return handler.lambda_handler(event, FakeContext())


def event_types(records: Records) -> list[tuple[str, str | None, int | None]]:
    return [(e["type"], e["node"], e["attempt"]) for e in numbered(records)]


def test_an_echo_node_returns_the_document_with_its_result(records: Records) -> None:
    # GIVEN a util.echo node whose params reference the run's input
    event = request("first", "util.echo", {"message": "{{ input.message }}", "n": 2})

    # WHEN the executor runs it
    doc = invoke(event)

    # THEN the returned document carries the output under results, and the node is recorded SUCCEEDED
    assert doc["results"] == {"first": {"message": "hello", "n": 2}}
    assert doc["input"] == {"message": "hello"} and doc["run"]["run_id"] == RUN
    node = records.get_node(RUN, "first", 1)
    assert node is not None and node.status == "SUCCEEDED" and node.attempts == 1
    assert node.output == {"message": "hello", "n": 2}
    assert event_types(records) == [("NODE_STARTED", "first", 1), ("NODE_SUCCEEDED", "first", 1)]


def test_a_failing_tool_raises_its_error_code_as_the_exception_type(records: Records) -> None:
    # GIVEN util.fail failing its first attempt with UpstreamDown, one retry allowed
    event = request(
        "boom", "util.fail", {"failures": 1, "error": "UpstreamDown", "message": "upstream down"}, retries=1
    )

    # WHEN attempt 1 runs
    with pytest.raises(NodeFailed) as raised:
        invoke(event)

    # THEN the exception's type name is the error code (Lambda's errorType), the message is the tool's
    assert type(raised.value).__name__ == "UpstreamDown"
    assert "upstream down" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    node = records.get_node(RUN, "boom", 1)
    assert node is not None and node.status == "RUNNING"
    assert node.error is not None and node.error["code"] == "UpstreamDown"

    # AND WHEN the retry (retry_count 1) runs, it succeeds
    doc = invoke(request("boom", "util.fail", {"failures": 1, "error": "UpstreamDown"}, retries=1, retry_count=1))

    # THEN the node is SUCCEEDED after 2 attempts and the events tell the story
    assert doc["results"]["boom"] == {"attempt": 2}
    node = records.get_node(RUN, "boom", 1)
    assert node is not None and (node.status, node.attempts, node.error) == ("SUCCEEDED", 2, None)
    assert event_types(records) == [
        ("NODE_STARTED", "boom", 1),
        ("LOG", "boom", 1),
        ("NODE_RETRYING", "boom", 1),
        ("NODE_STARTED", "boom", 2),
        ("NODE_SUCCEEDED", "boom", 2),
    ]


def test_the_last_attempt_records_node_failed(records: Records) -> None:
    # GIVEN a node with no retries that fails
    with pytest.raises(NodeFailed) as raised:
        invoke(request("boom", "util.fail", {"failures": 5, "error": "Nope"}))

    # THEN it is FAILED with its error, and NODE_FAILED was written
    assert type(raised.value).__name__ == "Nope"
    node = records.get_node(RUN, "boom", 1)
    assert (
        node is not None
        and node.status == "FAILED"
        and node.error == {"code": "Nope", "message": "injected failure (attempt 1 of 5 failing)"}
    )
    assert event_types(records)[-1] == ("NODE_FAILED", "boom", 1)


def test_a_redelivered_success_returns_the_recorded_result_without_new_events(records: Records) -> None:
    # GIVEN a node that already succeeded
    event = request("first", "util.echo", {"v": "{{ input.message }}"})
    first = invoke(event)
    before = event_types(records)

    # WHEN the very same invocation is delivered again
    second = invoke(event)

    # THEN it answers the same document and records nothing more
    assert second == first
    assert event_types(records) == before


def test_a_redelivered_final_failure_raises_the_same_error_without_new_events(records: Records) -> None:
    event = request("boom", "util.fail", {"failures": 5, "error": "Nope"})
    with pytest.raises(NodeFailed, match=r"injected failure \(attempt 1 of 5 failing\)"):
        invoke(event)
    before = event_types(records)
    with pytest.raises(NodeFailed) as raised:
        invoke(event)
    assert type(raised.value).__name__ == "Nope"
    assert event_types(records) == before


def test_a_reference_to_a_missing_field_fails_with_a_clear_message(records: Records) -> None:
    with pytest.raises(NodeFailed) as raised:
        invoke(
            request("second", "util.echo", {"v": "{{ first.nope }}"}, doc=document(results={"first": {"message": "x"}}))
        )
    assert type(raised.value).__name__ == "stepgraph.ReferenceError"
    assert "nope" in str(raised.value)


def test_an_unknown_tool_and_bad_params_are_named(records: Records) -> None:
    with pytest.raises(NodeFailed) as raised:
        invoke(request("n", "no.such.tool"))
    assert type(raised.value).__name__ == "UnknownTool"
    with pytest.raises(NodeFailed) as raised:
        invoke(request("m", "util.sleep", {"seconds": "soon"}))
    assert type(raised.value).__name__ == "InvalidParams"
    assert "seconds" in str(raised.value)


def nested_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [(10**150, "more than 100 digits"), (nested_list(MAX_OUTPUT_DEPTH), f"nest at most {MAX_OUTPUT_DEPTH} deep")],
)
def test_a_tool_output_that_cannot_be_stored_and_served_fails_the_node_as_invalid_output(
    records: Records, value: Any, message: str
) -> None:
    # GIVEN util.echo handing back a value past stepgraph's JSON limits (here one level deeper than the limit)
    # WHEN it runs
    with pytest.raises(NodeFailed) as raised:
        invoke(request("odd", "util.echo", {"v": value}))
    # THEN the node fails with InvalidOutput saying why, and no output is recorded
    assert type(raised.value).__name__ == "InvalidOutput"
    assert message in str(raised.value)
    node = records.get_node(RUN, "odd", 1)
    assert node is not None and node.output is None
    assert node.error is not None and node.error["code"] == "InvalidOutput"


@pytest.mark.parametrize(("value", "message"), [(float("nan"), "not finite"), ("\ud800", "lone surrogate")])
def test_a_lambda_result_no_json_reader_takes_fails_the_node_as_invalid_output(
    records: Records, value: Any, message: str
) -> None:
    # GIVEN a lambda: node's function answered a value that is not JSON once written out (NaN, a lone surrogate)
    doc = document(results={"agent": {"Payload": {"v": value}, "started": "2026-01-01T00:00:00.123Z"}})
    # WHEN the record step runs
    with pytest.raises(NodeFailed) as raised:
        invoke(request("agent", "lambda:my-agent", {}, doc=doc, mode="record"))
    # THEN the node fails with InvalidOutput instead of storing what GET /runs/{id} could not serve
    assert type(raised.value).__name__ == "InvalidOutput"
    assert message in str(raised.value)
    node = records.get_node(RUN, "agent", 1)
    assert node is not None and node.output is None


def test_a_request_that_is_not_one_fails_as_invalid_request(records: Records) -> None:
    with pytest.raises(NodeFailed) as raised:
        invoke({"hello": "world"})
    assert type(raised.value).__name__ == "stepgraph.InvalidRequest"


def test_a_large_output_is_offloaded_and_resolved_by_the_next_node(records: Records, monkeypatch: Any) -> None:
    # GIVEN a node that outputs 5 MB of text
    big = "lorem ipsum " * (5 * 1024 * 1024 // 12)
    doc = invoke(request("fetch", "util.echo", {"text": big, "status_code": 200}))

    # THEN the document stays far below the Step Functions limit, the scalar stays inline
    assert len(json.dumps(doc)) < 10_000
    assert doc["results"]["fetch"]["status_code"] == 200
    assert "$stepgraph_ref" in doc["results"]["fetch"]["text"]

    # AND WHEN the next node references the text, it receives the whole value
    doc2 = invoke(request("count", "util.echo", {"head": "{{ fetch.text }}"}, doc=doc))
    node = records.get_node(RUN, "count", 1)
    assert node is not None and node.status == "SUCCEEDED"
    resolved = handler.get_executor().offloader.resolve(doc2["results"]["count"], RUN)
    assert resolved == {"head": big}


def foreach_request(
    mode: str,
    doc: dict[str, Any],
    *,
    index: int | None = None,
    item: Any = None,
    retry_count: int = 0,
    params: dict[str, Any] | None = None,
    tool: str = "util.echo",
    retries: int = 0,
) -> dict[str, Any]:
    event = request(
        "each",
        tool,
        params if params is not None else {"value": "{{ item }}"},
        doc=doc,
        mode=mode,
        foreach="{{ input.items }}",
        retries=retries,
        retry_count=retry_count,
    )
    if mode == "item":
        event.update(item=item, index=index)
    return event


def test_foreach_items_are_collected_in_index_order(records: Records) -> None:
    # GIVEN a foreach node over three items whose Map ran them out of order
    doc = document(input={"items": ["a", "b", "c"]})
    for index in (2, 0, 1):
        marker = invoke(foreach_request("item", doc, index=index, item=doc["input"]["items"][index]))
        assert marker == {"ok": True}

    # WHEN the collect step runs after the Map
    out = invoke(foreach_request("collect", doc))

    # THEN the node's output is the list of item outputs in item order, recorded once with its count
    assert out["results"]["each"] == [{"value": "a"}, {"value": "b"}, {"value": "c"}]
    node = records.get_node(RUN, "each", 1)
    assert node is not None and node.status == "SUCCEEDED"
    assert (node.items_total, node.items_done) == (3, 3)
    assert [t for t, _, _ in event_types(records)] == ["NODE_STARTED", "NODE_SUCCEEDED"]
    # AND a redelivered item or collect changes nothing
    assert invoke(foreach_request("item", doc, index=1, item="b")) == {"ok": True}
    assert invoke(foreach_request("collect", doc)) == out
    node = records.get_node(RUN, "each", 1)
    assert node is not None and node.items_done == 3
    assert len(event_types(records)) == 2


def test_foreach_over_an_empty_list_records_an_empty_output(records: Records) -> None:
    doc = document(input={"items": []})
    out = invoke(foreach_request("collect", doc))
    assert out["results"]["each"] == []
    node = records.get_node(RUN, "each", 1)
    assert node is not None and node.status == "SUCCEEDED" and node.items_total == 0


def test_a_foreach_item_that_fails_for_good_fails_the_node(records: Records) -> None:
    # GIVEN a foreach node of util.fail items with one retry
    doc = document(input={"items": [1, 2]})
    params = {"failures": 5, "error": "ItemBroke"}
    invoke(foreach_request("item", doc, index=0, item=1, params={"failures": 0}, tool="util.fail", retries=1))

    # WHEN item 1 fails on both attempts
    with pytest.raises(NodeFailed, match=r"attempt 1 of 5 failing"):
        invoke(foreach_request("item", doc, index=1, item=2, params=params, tool="util.fail", retries=1))
    with pytest.raises(NodeFailed) as raised:
        invoke(foreach_request("item", doc, index=1, item=2, params=params, tool="util.fail", retries=1, retry_count=1))

    # THEN the error type is the tool's, the node is FAILED naming the item, events say retrying then failed
    assert type(raised.value).__name__ == "ItemBroke"
    node = records.get_node(RUN, "each", 1)
    assert node is not None and node.status == "FAILED" and node.error is not None
    assert node.error["code"] == "ItemBroke"
    kinds = [t for t, _, _ in event_types(records)]
    assert kinds.count("NODE_FAILED") == 1 and kinds.count("NODE_RETRYING") == 1
    failed = numbered(records)[-1]
    assert failed["type"] == "NODE_FAILED" and "item 1" in failed["message"]


def test_a_caught_failure_of_an_optional_node_is_recorded_once_and_the_run_goes_on(records: Records) -> None:
    # GIVEN an optional node whose every attempt timed out in Step Functions (the executor never recorded it)
    doc = document(
        results={"a": {"x": 1}}, failure={"Error": "States.Timeout", "Cause": "Task timed out after 5 seconds"}
    )
    event = request("slow", "util.sleep", {"seconds": 10}, doc=doc, mode="failed", optional=True)

    # WHEN the Catch hands it to the executor (twice: a redelivery)
    out = invoke(event)
    assert invoke(event) == out

    # THEN the run goes on with a null output and the node is FAILED with States.Timeout, recorded once
    assert out["results"] == {"a": {"x": 1}, "slow": None}
    assert "failure" not in out
    node = records.get_node(RUN, "slow", 1)
    assert node is not None and node.status == "FAILED"
    assert node.error == {"code": "States.Timeout", "message": "Task timed out after 5 seconds"}
    assert [t for t, _, _ in event_types(records)] == ["NODE_FAILED"]


def test_a_caught_failure_already_recorded_by_the_executor_is_not_recorded_twice(records: Records) -> None:
    with pytest.raises(NodeFailed, match=r"injected failure \(attempt 1 of 1 failing\)"):
        invoke(request("opt", "util.fail", {"failures": 1, "error": "Flaky"}, optional=True))
    cause = json.dumps({"errorType": "Flaky", "errorMessage": "injected failure"})
    doc = document(failure={"Error": "Flaky", "Cause": cause})
    out = invoke(request("opt", "util.fail", {"failures": 1}, doc=doc, mode="failed", optional=True))
    assert out["results"]["opt"] is None
    assert [t for t, _, _ in event_types(records)].count("NODE_FAILED") == 1


def test_nodes_in_a_loop_record_one_item_per_iteration(records: Records) -> None:
    # GIVEN a loop-body node run twice (the document counts its runs)
    doc = invoke(request("score", "util.echo", {"v": 1}, in_loop=True))
    assert doc["loops"] == {"score": 1}
    doc = invoke(request("score", "util.echo", {"v": 2}, doc=doc, in_loop=True))

    # THEN iterations 1 and 2 are separate records with their own outputs
    assert doc["loops"] == {"score": 2}
    assert [(n.iteration, n.output) for n in records.list_nodes(RUN)] == [(1, {"v": 1}), (2, {"v": 2})]


def test_update_state_paths_are_read_from_the_whole_output(records: Records, monkeypatch: Any) -> None:
    # GIVEN a small inline limit and a node mapping a large output field into state
    executor = handler.get_executor()
    monkeypatch.setattr(executor.offloader, "inline_limit", 256)
    event = request(
        "fetch",
        "util.echo",
        {"body": {"title": "T", "text": "x" * 2000}, "n": 1},
        update_state={"title": "body.title", "text": "body.text"},
    )

    # WHEN it runs
    doc = invoke(event)

    # THEN state holds the small value inline and the large one by reference, both resolvable
    assert doc["state"]["title"] == "T"
    assert "$stepgraph_ref" in doc["state"]["text"]
    assert executor.offloader.resolve(doc["state"]["text"], RUN) == "x" * 2000
    assert doc["sd"]["title"] == "T"


def test_many_medium_results_are_spilled_to_keep_the_document_small(records: Records) -> None:
    # GIVEN a document that already holds 40 results of 6 KiB each (each under the inline limit)
    results = {f"n{i}": {"text": "y" * 6000, "k": i} for i in range(40)}
    doc = invoke(request("last", "util.echo", {"k": "{{ n3.k }}", "t": "{{ n5.text }}"}, doc=document(results=results)))

    # THEN the returned document fits the budget, scalars stay inline, and everything resolves back
    assert len(json.dumps(doc).encode()) <= DOC_BUDGET
    assert all(doc["results"][f"n{i}"]["k"] == i for i in range(40))
    resolved = handler.get_executor().offloader.resolve(doc["results"], RUN)
    assert resolved["n7"]["text"] == "y" * 6000
    assert resolved["last"] == {"k": 3, "t": "y" * 6000}


def test_a_tool_past_its_timeout_is_recorded_as_timed_out_and_its_late_result_ignored(records: Records) -> None:
    # GIVEN a node with a 1 s timeout whose tool sleeps 2.5 s (Step Functions times the Task out at 1 s)
    event = request("slow", "util.sleep", {"seconds": 2.5}, timeout_seconds=1)

    # WHEN the executor runs it
    with pytest.raises(NodeFailed) as raised:
        invoke(event)

    # THEN the attempt is recorded as States.Timeout, as Step Functions reports it (raised as stepgraph.Timeout:
    # a function raising a States.* name would fail the execution with States.Runtime)
    assert type(raised.value).__name__ == "stepgraph.Timeout"
    node = records.get_node(RUN, "slow", 1)
    assert node is not None and node.status == "FAILED"
    assert node.error is not None and node.error["code"] == "States.Timeout"
    # AND once the tool does finish, nothing records it as a success
    time.sleep(1.0)
    node = records.get_node(RUN, "slow", 1)
    assert node is not None and node.status == "FAILED"
    assert [t for t, _, _ in event_types(records)].count("NODE_SUCCEEDED") == 0


def test_the_tool_run_is_its_own_trace_span(table: Any) -> None:
    # GIVEN an executor whose spans are recorded
    spans: list[str] = []

    @contextmanager
    def span(name: str) -> Iterator[None]:
        spans.append(name)
        yield

    executor = NodeExecutor(records=Records(table), offloader=Offloader(BlobStore(table)), span=span)

    # WHEN a node runs THEN its tool ran inside a span named after the tool
    executor.handle(executor.parse(request("a", "util.echo", {"x": 1})))
    assert spans == ["## tool util.echo"]


def test_a_user_lambda_result_is_recorded_like_a_tool_output(records: Records) -> None:
    # GIVEN the document after a lambda: node's Task called the user's function (second attempt succeeded)
    doc = document(
        results={"agent": {"Payload": {"answer": 42}, "started": "2026-01-01T00:00:00.123Z", "retry_count": 1}}
    )
    event = request("agent", "lambda:my-agent", {"q": "{{ input.message }}"}, doc=doc, mode="record")

    # WHEN the record step runs (and is delivered twice)
    out = invoke(event)
    assert invoke(event) == out

    # THEN the node's result is the function's payload, recorded SUCCEEDED after 2 attempts, events once
    assert out["results"]["agent"] == {"answer": 42}
    node = records.get_node(RUN, "agent", 1)
    assert node is not None and (node.status, node.attempts, node.output) == ("SUCCEEDED", 2, {"answer": 42})
    assert node.started_at == "2026-01-01T00:00:00.123000Z" and node.tool == "lambda:my-agent"
    assert event_types(records) == [("NODE_STARTED", "agent", 1), ("NODE_SUCCEEDED", "agent", 2)]


def test_a_graph_budget_smaller_than_the_default_is_honoured(records: Records) -> None:
    results = {f"n{i}": {"text": "z" * 3000} for i in range(10)}
    doc = invoke(request("last", "util.echo", {"k": 1}, doc=document(results=results), doc_budget=8192))
    assert len(json.dumps(doc).encode()) <= 8192


def test_the_default_executor_follows_the_settings(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the process's executor, built for the current settings
    from functions.settings import get_settings

    handler.set_executor(None)
    first = handler.get_executor()
    assert handler.get_executor() is first

    # WHEN the settings are re-read for another table (a new local cloud)
    monkeypatch.setenv("STEPGRAPH_TABLE", "another-table")
    get_settings.cache_clear()

    # THEN the next invocation uses an executor bound to it
    second = handler.get_executor()
    assert second is not first
    assert second.records.table.name == "another-table"
    handler.set_executor(None)


def test_a_stale_attempt_is_not_run_again(records: Records) -> None:
    # GIVEN attempt 2 of a node already started (attempt 1 failed)
    with pytest.raises(NodeFailed, match=r"attempt 1 of 5 failing"):
        invoke(request("n", "util.fail", {"failures": 5, "error": "E"}, retries=3))
    with pytest.raises(NodeFailed, match=r"attempt 2 of 5 failing"):
        invoke(request("n", "util.fail", {"failures": 5, "error": "E"}, retries=3, retry_count=1))
    before = event_types(records)

    # WHEN a late duplicate of attempt 1 arrives
    with pytest.raises(NodeFailed) as raised:
        invoke(request("n", "util.fail", {"failures": 5, "error": "E"}, retries=3))

    # THEN it does not run the tool nor record anything
    assert type(raised.value).__name__ == "stepgraph.StaleAttempt"
    assert event_types(records) == before


def test_a_chatty_tool_gets_at_most_two_hundred_log_events_per_attempt(table: Any) -> None:
    # GIVEN a tool that logs 250 lines
    from pydantic import RootModel

    from functions.executor.tools.base import OpenParams, Tool

    class Out(RootModel[dict[str, Any]]):
        pass

    def chatty(params: Any, ctx: Any) -> Out:
        for i in range(250):
            ctx.log(f"line {i}")
        return Out({"done": True})

    tool = Tool("test.chatty", "logs a lot", OpenParams, Out, chatty)

    class Tools:
        def get(self, name: str) -> Tool:
            return tool

    records = Records(table)
    executor = NodeExecutor(records=records, offloader=Offloader(BlobStore(table)), tools=Tools())

    # WHEN it runs
    executor.handle(executor.parse(request("talk", "test.chatty")))

    # THEN 200 lines became LOG events, then one line says the rest are in the function's logs
    logs = [e["message"] for e in numbered(records) if e["type"] == "LOG"]
    assert logs[:200] == [f"line {i}" for i in range(200)]
    assert len(logs) == 201 and "more than 200 log lines" in logs[-1]
