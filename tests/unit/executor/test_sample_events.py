"""The sample events in events/ (for `sam local invoke -e`) are valid requests and do what their names say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from functions.executor.errors import NodeFailed
from statemachine.protocol import ExecutorRequest

from .helpers import invoke

if TYPE_CHECKING:
    from functions.store.records import Records

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

EVENTS = Path(__file__).resolve().parents[3] / "events"


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"executor-{name}.json").read_text())


def test_every_sample_is_an_executor_request() -> None:
    names = sorted(p.stem for p in EVENTS.glob("executor-*.json"))
    assert names == [
        "executor-answer",
        "executor-batch",
        "executor-collect",
        "executor-failed",
        "executor-item",
        "executor-lookup",
        "executor-plan",
        "executor-record",
        "executor-retry",
        "executor-run",
        "executor-wait",
    ]
    for name in names:
        request = ExecutorRequest.from_event(json.loads((EVENTS / f"{name}.json").read_text()))
        assert request.context.node == request.node


def test_run_sample_returns_the_document_with_the_result(records: Records) -> None:
    doc = invoke(sample("run"))
    assert doc["results"]["second"] == {"got": "hello", "note": "second saw: hello"}


def test_retry_sample_fails_its_first_attempt_with_the_named_error(records: Records) -> None:
    with pytest.raises(NodeFailed) as raised:
        invoke(sample("retry"))
    assert type(raised.value).__name__ == "UpstreamDown"
    event = sample("retry") | {"retry_count": 1}
    assert invoke(event)["results"]["flaky"] == {"attempt": 2}


def test_item_and_collect_samples_make_a_foreach_output(records: Records) -> None:
    item = sample("item")
    for index, value in enumerate(item["doc"]["input"]["items"]):
        assert invoke(item | {"index": index, "item": value}) == {"ok": True}
    assert invoke(sample("collect"))["results"]["each"] == [{"value": "a"}, {"value": "b"}, {"value": "c"}]


def test_plan_batch_and_collect_samples_make_a_foreach_output(records: Records) -> None:
    plan = invoke(sample("plan"))
    assert (plan["starts"], plan["size"]) == ([0, 1, 2], 1)  # 3 items over 4 lanes: one item per batch
    assert invoke(sample("batch")) == {"ok": True}  # the sample's batch holds all three items
    assert invoke(sample("collect"))["results"]["each"] == [{"value": "a"}, {"value": "b"}, {"value": "c"}]


def test_failed_sample_records_the_timeout_and_goes_on(records: Records) -> None:
    doc = invoke(sample("failed"))
    assert doc["results"]["chart"] is None
    node = records.get_node(doc["run"]["run_id"], "chart", 1)
    assert node is not None and node.error is not None and node.error["code"] == "States.Timeout"


def test_record_sample_records_the_user_function_output(records: Records) -> None:
    doc = invoke(sample("record"))
    assert doc["results"]["agent"] == {"answer": "because"}
    node = records.get_node(doc["run"]["run_id"], "agent", 1)
    assert node is not None and node.status == "SUCCEEDED" and node.tool == "lambda:stepgraph-user-agent"


def test_lookup_sample_misses_then_hits_once_the_function_output_is_recorded(records: Records) -> None:
    # GIVEN a cached lambda: node's lookup, before any output was recorded: a miss, leaving the key
    lookup = sample("lookup")
    missed = invoke(lookup)
    key = missed["cache"]["agent"]
    assert len(key) == 64 and missed["results"] == {}
    # WHEN the function's output is recorded with that key (the Task ran, then <node>.record)
    ran = missed | {"results": {"agent": {"Payload": {"answer": "because"}, "retry_count": 0}}}
    recorded = invoke(lookup | {"mode": "record", "doc": ran})
    assert recorded["results"]["agent"] == {"answer": "because"} and "cache" not in recorded
    # THEN another run's lookup of the same call is a hit: the node is recorded, cached, and the key is gone
    other = "r_0123456789abcde2"
    doc = lookup["doc"] | {"run": {**lookup["doc"]["run"], "run_id": other}}
    execution = lookup["execution"].rsplit(":", 1)[0] + f":{other}"
    hit = invoke(lookup | {"doc": doc, "execution": execution})
    assert hit["results"]["agent"] == {"answer": "because"} and "cache" not in hit
    node = records.get_node(other, "agent", 1)
    assert node is not None and node.status == "SUCCEEDED" and node.cached


def test_wait_and_answer_samples_make_a_persons_step(records: Records) -> None:
    # GIVEN a person's step invoked by its .waitForTaskToken Task with a token
    wait = sample("wait")
    # WHEN the wait sample runs
    assert invoke(wait) == {"waiting": True}
    # THEN the node waits with its prompt resolved, and the token is kept apart from the node's record
    run_id = wait["doc"]["run"]["run_id"]
    node = records.get_node(run_id, "approve", 1)
    assert node is not None and node.status == "WAITING" and node.prompt == "Publish Q3 report?"
    item = records.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "TOKEN#approve#0001"})["Item"]
    assert item["token"] == wait["token"]
    raw = records.table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "NODE#approve#0001"})["Item"]
    assert wait["token"] not in json.dumps(raw, default=str)
    # WHEN the answer sample runs (the Task put the respond route's answer at results.approve)
    doc = invoke(sample("answer"))
    # THEN the node succeeded with the answer and the document carries it
    assert doc["results"]["approve"]["approved"] is True
    node = records.get_node(run_id, "approve", 1)
    assert node is not None and node.status == "SUCCEEDED" and node.output["comment"] == "ship it"
