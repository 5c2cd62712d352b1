"""The executor Lambda end to end against moto's table: documents returned, records written, errors typed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from functions.executor import handler
from functions.executor.errors import NodeFailed
from functions.executor.node import NodeExecutor
from functions.store.offload import BlobStore, Offloader
from functions.store.records import Records

from .helpers import RUN, FakeContext, document, request

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def records(table: Any) -> Iterator[Records]:
    recs = Records(table)
    handler.set_executor(NodeExecutor(records=recs, offloader=Offloader(BlobStore(table)), logger=handler.logger,
                                      metric=handler.emit_metric))
    yield recs
    handler.set_executor(None)


def invoke(event: dict[str, Any]) -> Any:
    return handler.lambda_handler(event, FakeContext())


def event_types(records: Records) -> list[tuple[str, str | None, int | None]]:
    return [(e["type"], e["node"], e["attempt"]) for e in records.list_events(RUN, limit=1000).events]


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
    event = request("boom", "util.fail", {"failures": 1, "error": "UpstreamDown", "message": "upstream down"},
                    retries=1)

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
        ("NODE_STARTED", "boom", 1), ("LOG", "boom", 1), ("NODE_RETRYING", "boom", 1),
        ("NODE_STARTED", "boom", 2), ("NODE_SUCCEEDED", "boom", 2),
    ]


def test_the_last_attempt_records_node_failed(records: Records) -> None:
    # GIVEN a node with no retries that fails
    with pytest.raises(NodeFailed) as raised:
        invoke(request("boom", "util.fail", {"failures": 5, "error": "Nope"}))

    # THEN it is FAILED with its error, and NODE_FAILED was written
    assert type(raised.value).__name__ == "Nope"
    node = records.get_node(RUN, "boom", 1)
    assert node is not None and node.status == "FAILED" and node.error == {
        "code": "Nope", "message": "injected failure (attempt 1 of 5 failing)"}
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
    with pytest.raises(NodeFailed):
        invoke(event)
    before = event_types(records)
    with pytest.raises(NodeFailed) as raised:
        invoke(event)
    assert type(raised.value).__name__ == "Nope"
    assert event_types(records) == before


def test_a_reference_to_a_missing_field_fails_with_a_clear_message(records: Records) -> None:
    with pytest.raises(NodeFailed) as raised:
        invoke(request("second", "util.echo", {"v": "{{ first.nope }}"},
                       doc=document(results={"first": {"message": "x"}})))
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
    resolved = handler.get_executor().offloader.resolve(doc2["results"]["count"])
    assert resolved == {"head": big}
