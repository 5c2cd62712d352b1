"""The plan read off a compiled definition: counts per state, worst cases, limits."""

from __future__ import annotations

from typing import Any

import pytest
from asl_shape import compiled, echo

from statemachine.errors import LimitError
from statemachine.plan import MAX_HISTORY_EVENTS, plan_of


def test_a_chain_costs_one_transition_one_call_and_five_events_a_node() -> None:
    plan = plan_of(compiled({"nodes": [echo("a"), echo("b")], "edges": [{"from": "a", "to": "b"}]}))
    assert (plan.transitions, plan.lambda_invocations, plan.history_events_max) == ((2, 2), (2, 2), 12)
    assert plan.states == 2


def test_retries_and_caught_failures_raise_only_the_worst_case() -> None:
    # GIVEN an optional node allowed 2 retries
    spec = {"nodes": [echo("a", retry={"max_attempts": 2}, optional=True)]}
    plan = plan_of(compiled(spec))
    # THEN min is one call; max adds both retries (3 events each) and the failure recorder
    assert plan.lambda_invocations == (1, 4)
    assert plan.transitions == (1, 4)
    assert plan.history_events_max == 2 + 5 + 2 * 3 + 5


def test_a_condition_makes_a_range() -> None:
    spec = {"nodes": [echo("a"), echo("b")], "edges": [{"from": "a", "to": "b", "when": "a.go == true"}]}
    plan = plan_of(compiled(spec))
    assert plan.lambda_invocations == (1, 2)


def test_a_loop_runs_its_body_up_to_its_bound() -> None:
    back = {"from": "b", "to": "a", "max_iterations": 7}
    spec = {"nodes": [echo("a"), echo("b")], "edges": [{"from": "a", "to": "b"}, back]}
    plan = plan_of(compiled(spec))
    # each round: two Tasks and the loop Choice; then the Succeed state ending the run
    assert plan.lambda_invocations == (2, 14)
    assert plan.transitions == (4, 22)


def test_foreach_items_are_an_assumption_the_caller_can_change() -> None:
    each = {"id": "each", "tool": "util.echo", "foreach": "{{ input.items }}", "params": {"v": "{{ item }}"}}
    spec = {"nodes": [each]}
    assert (
        plan_of(compiled(spec), foreach_items=100).lambda_invocations[1] > plan_of(compiled(spec)).lambda_invocations[1]
    )


def test_a_distributed_map_keeps_its_items_events_out_of_the_parents_history() -> None:
    # GIVEN a Map run as child executions
    definition: dict[str, Any] = {
        "StartAt": "m",
        "States": {
            "m": {
                "Type": "Map",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "t",
                    "States": {"t": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True}},
                },
                "End": True,
            }
        },
    }
    plan = plan_of(definition, foreach_items=10_000)
    # THEN the parent's history is the Map's own events, while calls and transitions count every item
    assert plan.history_events_max == 2 + 4 + 2
    assert plan.lambda_invocations == (10_000, 10_000)


def test_a_worst_case_over_the_history_limit_is_refused_naming_it() -> None:
    back = {"from": "b", "to": "a", "max_iterations": 10_000}
    spec = {"nodes": [echo("a"), echo("b")], "edges": [{"from": "a", "to": "b"}, back]}
    plan = plan_of(compiled(spec))
    assert plan.history_events_max > MAX_HISTORY_EVENTS
    with pytest.raises(LimitError) as info:
        plan.check()
    assert info.value.status == 422
    assert "25,000 history events" in info.value.message
    # AND an express workflow, which has no such history, is not
    plan_of(compiled({**spec, "options": {"workflow_type": "EXPRESS"}}), workflow_type="EXPRESS").check()


def test_a_map_over_batches_counts_one_child_per_batch() -> None:
    # GIVEN a distributed Map whose child Task runs up to 4 items (its context's batch_max)
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"Payload": {"mode": "batch", "ctx": '{"node": "each", "batch_max": 4}'}},
        "End": True,
    }
    processor = {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "t", "States": {"t": task}}
    definition = {"StartAt": "m", "States": {"m": {"Type": "Map", "ItemProcessor": processor, "End": True}}}
    # THEN 10 items are 3 children, each one call
    assert plan_of(definition, foreach_items=10).lambda_invocations == (3, 3)
