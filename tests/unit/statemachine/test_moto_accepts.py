"""Compiled definitions run in moto's ASL interpreter with an executor stub: the ASL is accepted and the
document flows as the compiler intends (joins, skips, loops, foreach order, optional and lambda nodes)."""

from __future__ import annotations

from typing import Any

from asl_shape import compiled, echo
from moto_run import EXECUTOR, Stub, moto_sfn

from statemachine.payload import initial_document
from statemachine.validation import validate

RUN = {"run_id": "r_1", "graph_id": "g_1", "version": 1}


def run_spec(spec: dict[str, Any], run_input: dict[str, Any], **functions: Any) -> tuple[str, Any, Stub]:
    stub = Stub()
    definition = compiled(spec)
    with moto_sfn({EXECUTOR: stub, **functions}) as run:
        status, out = run(definition, initial_document(validate({"name": "t", **spec}), RUN, run_input))
    return status, out, stub


def test_diamond_with_skipped_branch_joins_results_and_state() -> None:
    # GIVEN a -> (b when false, c) -> d; c updates state
    spec = {
        "nodes": [
            echo("a", params={"v": 1}),
            echo("b", params={"v": 2}),
            echo("c", params={"k": "{{ a.v }}"}, update_state=True),
            echo("d", params={"b": "{{ state.k }}"}),
        ],
        "edges": [
            {"from": "a", "to": "b", "when": "a.v == 5"},
            {"from": "a", "to": "c"},
            {"from": "b", "to": "d"},
            {"from": "c", "to": "d"},
        ],
    }
    status, doc, stub = run_spec(spec, {"x": 1})
    assert status == "SUCCEEDED", doc
    assert doc["results"] == {"a": {"v": 1}, "c": {"k": 1}, "d": {"b": 1}}
    assert doc["state"] == {"x": 1, "k": 1}
    assert ("b", "run") not in stub.calls


def test_loop_runs_until_its_bound() -> None:
    spec = {
        "nodes": [echo("body", params={"v": 1}), echo("after", params={"v": 2})],
        "edges": [{"from": "body", "to": "body", "max_iterations": 3}, {"from": "body", "to": "after"}],
    }
    status, doc, stub = run_spec(spec, {})
    assert status == "SUCCEEDED", doc
    assert doc["loops"] == {"body": 3, "body@loop": 3}
    assert stub.calls.count(("body", "run")) == 3


def test_nested_loop_restarts_its_count_on_each_outer_iteration() -> None:
    # GIVEN outer: o -> i -> t, t -> o (bound 2); inner: i -> t, t -> i (bound 3)
    spec = {
        "nodes": [echo("o", params={"v": 1}), echo("i", params={"v": 2}), echo("t", params={"v": 3})],
        "edges": [
            {"from": "o", "to": "i"},
            {"from": "i", "to": "t"},
            {"from": "t", "to": "i", "max_iterations": 3},
            {"from": "t", "to": "o", "max_iterations": 2},
        ],
    }
    status, doc, stub = run_spec(spec, {})
    # THEN the inner loop runs 3 times in each of the 2 outer iterations
    assert status == "SUCCEEDED", doc
    assert stub.calls.count(("o", "run")) == 2
    assert stub.calls.count(("i", "run")) == 6
    assert doc["loops"]["i"] == 6


def test_foreach_collects_in_item_order_and_optional_failure_goes_on() -> None:
    spec = {
        "nodes": [
            echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"}, max_concurrency=2),
            {"id": "bad", "tool": "util.fail", "params": {"failures": 9, "error": "Nope"}, "optional": True},
            echo("end", params={"all": "{{ each }}", "bad": "{{ bad }}"}),
        ],
        "edges": [{"from": "each", "to": "bad"}, {"from": "bad", "to": "end"}],
    }
    status, doc, stub = run_spec(spec, {"items": [3, 1, 2]})
    assert status == "SUCCEEDED", doc
    assert doc["results"]["end"] == {"all": [{"v": 3}, {"v": 1}, {"v": 2}], "bad": None}
    assert ("bad", "failed") in stub.calls


def test_lambda_node_is_invoked_directly_then_recorded() -> None:
    # GIVEN a user's function and a node calling it with a whole and an interpolated reference
    seen: list[Any] = []

    def user_fn(event: Any, _context: Any) -> Any:
        seen.append(event)
        return {"len": len(event["text"])}

    spec = {
        "nodes": [
            echo("a", params={"t": "hi"}),
            {
                "id": "mine",
                "tool": "lambda:user-fn",
                "params": {"text": "{{ a.t }}", "msg": "say {{ a.t }}!", "fixed": [1, "{{ a.t }}"]},
            },
        ],
        "edges": [{"from": "a", "to": "mine"}],
    }
    status, doc, stub = run_spec(spec, {}, **{"user-fn": user_fn})
    # THEN the function received resolved params and the record step stored its output as the node's result
    assert status == "SUCCEEDED", doc
    assert seen == [{"text": "hi", "msg": "say hi!", "fixed": [1, "hi"]}]
    assert doc["results"]["mine"] == {"len": 2}
    assert ("mine", "record") in stub.calls


def test_failing_lambda_node_is_recorded_and_fails_the_run_with_its_error() -> None:
    def user_fn(event: Any, _context: Any) -> Any:
        raise ValueError("bad input")

    spec = {"nodes": [{"id": "mine", "tool": "lambda:user-fn", "params": {}}]}
    status, out, stub = run_spec(spec, {}, **{"user-fn": user_fn})
    assert status == "FAILED"
    assert out["error"] == "ValueError"
    assert ("mine", "failed") in stub.calls
