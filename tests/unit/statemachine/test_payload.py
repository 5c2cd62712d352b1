"""The run document and how a node's end changes it (the rules the executor applies)."""

from __future__ import annotations

import pytest

from statemachine.errors import DataError
from statemachine.payload import apply_failure, apply_result, initial_document, iteration, skipped_nodes
from statemachine.protocol import ExecutorRequest, NodeContext
from statemachine.spec import GraphSpec, RetryPolicy

SPEC = GraphSpec.model_validate(
    {
        "name": "g",
        "nodes": [{"id": "a", "tool": "util.echo"}, {"id": "b", "tool": "util.echo"}],
        "edges": [{"from": "a", "to": "b"}],
    }
)


def ctx(node: str = "a", **kw: object) -> NodeContext:
    return NodeContext(node=node, tool="util.echo", retry=RetryPolicy(max_attempts=0), timeout_seconds=5, **kw)


def test_initial_document_starts_state_as_the_input() -> None:
    # GIVEN an input WHEN a run starts THEN state is a copy of it and results are empty
    doc = initial_document(SPEC, {"run_id": "r_1", "graph_id": "g_1", "version": 1}, {"x": 1})
    assert doc == {
        "run": {"run_id": "r_1", "graph_id": "g_1", "version": 1},
        "input": {"x": 1},
        "state": {"x": 1},
        "results": {},
        "loops": {},
        "sd": {},
    }
    doc["state"]["x"] = 2
    assert doc["input"] == {"x": 1}


def test_initial_document_refuses_a_non_object_input() -> None:
    with pytest.raises(DataError, match="must be a JSON object"):
        initial_document(SPEC, {}, [1, 2])  # type: ignore[arg-type]


def test_apply_result_records_the_output_without_touching_the_old_document() -> None:
    doc = initial_document(SPEC, {}, {})
    new = apply_result(doc, ctx(), {"v": 1})
    assert new["results"] == {"a": {"v": 1}}
    assert doc["results"] == {}


def test_update_state_true_merges_the_output_object() -> None:
    doc = initial_document(SPEC, {}, {"keep": 1, "score": 0})
    new = apply_result(doc, ctx(update_state=True), {"score": 9})
    assert new["state"] == {"keep": 1, "score": 9}
    assert new["sd"] == {"score": 9}


def test_update_state_mapping_picks_output_paths() -> None:
    doc = initial_document(SPEC, {}, {})
    new = apply_result(doc, ctx(update_state={"q": "metrics.quality", "all": ""}), {"metrics": {"quality": 4}})
    assert new["state"] == {"q": 4, "all": {"metrics": {"quality": 4}}}


def test_update_state_errors_name_the_node() -> None:
    doc = initial_document(SPEC, {}, {})
    with pytest.raises(DataError, match="node 'a' has update_state: true but its output is a list"):
        apply_result(doc, ctx(update_state=True), [1])
    with pytest.raises(DataError, match="update_state 'q'"):
        apply_result(doc, ctx(update_state={"q": "nope"}), {})


def test_loop_nodes_count_their_iterations() -> None:
    doc = initial_document(SPEC, {}, {})
    c = ctx(in_loop=True)
    assert iteration(doc, c) == 1
    doc = apply_result(doc, c, 1)
    assert iteration(doc, c) == 2
    doc = apply_result(doc, c, 2)
    assert doc["loops"] == {"a": 2}
    assert iteration(doc, ctx()) == 1


def test_apply_failure_nulls_the_output_and_drops_the_caught_error() -> None:
    doc = {**initial_document(SPEC, {}, {}), "failure": {"Error": "States.Timeout", "Cause": "x"}}
    new = apply_failure(doc, ctx(optional=True))
    assert new["results"] == {"a": None}
    assert "failure" not in new


def test_skipped_nodes_are_those_without_a_result() -> None:
    assert skipped_nodes(SPEC, {"results": {"a": None}}) == ["b"]


def test_request_round_trip_and_failure_message() -> None:
    c = ctx(params={"k.$": "$.not.evaluated"})
    req = ExecutorRequest.from_event(
        {
            "node": "a",
            "tool": "util.echo",
            "ctx": c.to_json(),
            "doc": {"failure": {"Error": "Boom", "Cause": '{"errorType": "Boom", "errorMessage": "it broke"}'}},
            "retry_count": 2,
            "mode": "failed",
        }
    )
    assert req.context == c
    assert req.attempt == 3
    assert req.failure is not None
    assert (req.failure.error, req.failure.message()) == ("Boom", "it broke")
