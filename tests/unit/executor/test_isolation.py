"""Runs can't reach each other through the executor: it acts only for the invoking execution's run, and
honours only the output references it made for that run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from functions.executor import handler
from functions.executor.errors import NodeFailed
from functions.executor.node import NodeExecutor
from functions.store.events import EventLog
from functions.store.offload import REF_KEY, BlobStore, Offloader
from functions.store.records import Records

from .helpers import RUN, FakeContext, document, request

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

OTHER = "r_00000000000000f2"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_000000000001:" + RUN


@pytest.fixture
def records(table: Any) -> Iterator[Records]:
    recs = Records(table)
    handler.set_executor(
        NodeExecutor(records=recs, offloader=Offloader(BlobStore(table), inline_limit=200), logger=handler.logger)
    )
    yield recs
    handler.set_executor(None)


def invoke(event: dict[str, Any]) -> Any:
    return handler.lambda_handler(event, FakeContext())


def other_runs_blob(table: Any) -> dict[str, Any]:
    """A genuine reference to a large output of another run (what a hostile input would point at)."""
    return Offloader(BlobStore(table), inline_limit=200).offload(OTHER, "secret", 1, {"text": "private " * 100})


@pytest.mark.parametrize(
    "execution",
    [
        # another run of the same graph and version
        f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_000000000001:{OTHER}",
        # the right run name on another graph's state machine
        f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_0000000000ff:{RUN}",
        # the right graph, another version's state machine
        f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_000000000001-v2:{RUN}",
        # not an execution at all, or none
        "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-user-x",
        None,
    ],
    ids=["other-run", "other-graph", "other-version", "not-an-execution", "missing"],
)
def test_a_request_for_a_run_the_execution_does_not_run_writes_nothing(
    records: Records, table: Any, execution: str | None
) -> None:
    # GIVEN a well-formed request whose document names a run the invoking execution does not run
    event = request("injected", "util.echo", {"x": 1})
    event["execution"] = execution

    # WHEN the executor is invoked with it
    with pytest.raises(NodeFailed) as raised:
        invoke(event)

    # THEN it fails with stepgraph.InvalidRequest naming why, and writes nothing at all
    assert type(raised.value).__name__ == "stepgraph.InvalidRequest"
    assert "refused" in str(raised.value)
    assert records.get_node(RUN, "injected", 1) is None
    assert EventLog(records.table).page(RUN, limit=100).events == []
    assert [i for i in table.scan()["Items"] if i["pk"].startswith("RUN#")] == []


def test_the_invoking_executions_own_run_is_served(records: Records) -> None:
    # GIVEN a request from the execution of the run its document names (version 1 and a later version)
    doc = document()
    doc["run"]["version"] = 3
    event = request("first", "util.echo", {"x": 1}, doc=doc)
    event["execution"] = f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_000000000001-v3:{RUN}"

    # WHEN the executor is invoked THEN the node runs and is recorded
    assert invoke(event)["results"]["first"] == {"x": 1}
    assert invoke(request("second", "util.echo", {"y": 2}))["results"]["second"] == {"y": 2}
    assert records.get_node(RUN, "first", 1) is not None


def test_a_reference_to_another_run_in_the_input_is_returned_as_sent(records: Records, table: Any) -> None:
    # GIVEN a run input holding a genuine reference to another run's stored output
    foreign = other_runs_blob(table)
    doc = document(input={"data": foreign})

    # WHEN an echo node returns the input
    out = invoke(request("echo", "util.echo", {"data": "{{ input.data }}"}, doc=doc))

    # THEN the node's output is the reference-shaped data exactly as sent, not the other run's text
    assert out["results"]["echo"] == {"data": foreign}
    node = records.get_node(RUN, "echo", 1)
    assert node is not None and node.output == {"data": foreign}
    assert "private" not in str(node.output)


def test_a_literal_reference_in_params_is_plain_data(records: Records) -> None:
    # GIVEN params holding a literal reference-shaped object naming this very run
    literal = {REF_KEY: {"run_id": RUN, "node": "nowhere", "iteration": 1, "field": "text", "bytes": 9}}

    # WHEN the node runs
    out = invoke(request("lit", "util.echo", {"value": literal}))

    # THEN the output holds the object as written; reading it back needs no stored blob
    assert out["results"]["lit"] == {"value": literal}
    executor = handler.get_executor()
    assert executor.offloader.resolve(out["results"]["lit"], RUN) == {"value": literal}


def test_the_executors_own_references_still_flow_between_nodes(records: Records) -> None:
    # GIVEN a node whose large output is offloaded (a signed reference in the document)
    doc = invoke(request("big", "util.echo", {"text": "y" * 1000}))
    assert REF_KEY in doc["results"]["big"]["text"]

    # WHEN the next node reads it THEN it gets the value
    out = invoke(request("next", "util.echo", {"n": "{{ big.text }}"}, doc=doc))
    executor = handler.get_executor()
    assert executor.offloader.resolve(out["results"]["next"], RUN) == {"n": "y" * 1000}
