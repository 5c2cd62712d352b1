"""The executor's sample events (events/executor-*.json, for ``sam local invoke -e``) invoked as the template's
ExecutorFunction through the local cloud: what Lambda returns and what lands in the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from functions.store.records import Records

if TYPE_CHECKING:
    from local.cloud import LocalCloud

EVENTS = Path(__file__).resolve().parents[2] / "events"
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"executor-{name}.json").read_text())


def test_run_event_returns_the_new_document_and_records_the_node(cloud: LocalCloud) -> None:
    # WHEN the run sample is invoked as ExecutorFunction
    event = sample("run")
    result = cloud.invoke("ExecutorFunction", event)

    # THEN Lambda returns the document with the node's result, and the node is recorded in the stack's table
    assert result.function_error is None, result.payload
    assert result.json()["results"]["second"] == {"got": "hello", "note": "second saw: hello"}
    node = Records().get_node(event["doc"]["run"]["run_id"], "second", 1)
    assert node is not None and node.status == "SUCCEEDED"


def test_retry_event_is_a_function_error_named_by_the_tool(cloud: LocalCloud) -> None:
    result = cloud.invoke("ExecutorFunction", sample("retry"))
    assert result.function_error == "Unhandled"
    body = result.json()
    assert body["errorType"] == "UpstreamDown"
    assert body["errorMessage"] == "upstream returned 503 (attempt 1 of 1 failing)"


def test_item_then_collect_events_build_the_foreach_output(cloud: LocalCloud) -> None:
    item = sample("item")
    for index, value in enumerate(item["doc"]["input"]["items"]):
        result = cloud.invoke("ExecutorFunction", item | {"index": index, "item": value})
        assert result.json() == {"ok": True}
    collected = cloud.invoke("ExecutorFunction", sample("collect"))
    assert collected.json()["results"]["each"] == [{"value": "a"}, {"value": "b"}, {"value": "c"}]


def test_failed_and_record_events(cloud: LocalCloud) -> None:
    failed = cloud.invoke("ExecutorFunction", sample("failed"))
    assert failed.function_error is None and failed.json()["results"]["chart"] is None
    recorded = cloud.invoke("ExecutorFunction", sample("record"))
    assert recorded.function_error is None and recorded.json()["results"]["agent"] == {"answer": "because"}
