"""People's steps (``human.approval``, ``human.input``): what the compiler emits and what validation refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asl_shape import ARN, SERVICE_RETRY

from functions.executor.tools import registry
from statemachine.compiler import compile_graph
from statemachine.errors import SpecError
from statemachine.plan import plan_of
from statemachine.spec import HUMAN_DEFAULT_TIMEOUT_SECONDS
from statemachine.validation import validate


def spec_with(node: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "nodes": [
            {"id": "draft", "tool": "util.echo", "params": {"title": "x"}},
            {"id": "approve", "tool": "human.approval", "params": {"prompt": "Publish {{ draft.title }}?"}, **node},
            {"id": "publish", "tool": "util.echo"},
        ],
        "edges": [
            {"from": "draft", "to": "approve"},
            {"from": "approve", "to": "publish", "when": "approve.approved == True"},
        ],
        **({"options": options} if options else {}),
    }


def compiled(raw: dict[str, Any]) -> dict[str, Any]:
    return compile_graph(validate(raw, registry), executor_arn=ARN)


def problems(raw: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(SpecError) as caught:
        validate(raw, registry)
    return list(caught.value.details)


def test_an_approval_compiles_to_a_wait_for_task_token_task_then_its_answer_step() -> None:
    # GIVEN an approval step that waits at most an hour
    # WHEN it is compiled
    states = compiled(spec_with({"timeout_seconds": 3600}))["States"]
    # THEN its state invokes the executor through the optimized .waitForTaskToken integration, passing the token
    wait = states["approve"]
    assert wait["Type"] == "Task"
    assert wait["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert wait["Parameters"]["FunctionName"] == ARN
    payload = wait["Parameters"]["Payload"]
    assert payload["token.$"] == "$$.Task.Token"
    assert payload["mode"] == "wait"
    assert json.loads(payload["ctx"])["params"] == {"prompt": "Publish {{ draft.title }}?"}
    # AND the timeout bounds the wait, only Lambda's service errors are retried, the answer lands in results
    assert wait["TimeoutSeconds"] == 3600
    assert wait["Retry"] == [SERVICE_RETRY]
    assert wait["ResultPath"] == "$.results.approve"
    assert "Catch" not in wait
    # AND the answer step records it and hands the document on
    answer = states[wait["Next"]]
    assert wait["Next"] == "approve.answer"
    assert answer["Resource"] == "arn:aws:states:::lambda:invoke"
    assert answer["Parameters"]["Payload"]["mode"] == "answer"
    assert json.loads(answer["Parameters"]["Payload"]["ctx"]).get("params") is None
    assert answer["OutputPath"] == "$.Payload"
    # AND the condition on the answer keeps `approved` inline
    assert json.loads(payload["ctx"])["inline_paths"] == ["approved"]


def test_an_optional_wait_is_caught_and_the_default_wait_is_a_day() -> None:
    # GIVEN an optional approval step with no timeout of its own, in a graph whose tools time out after 60 s
    states = compiled(spec_with({"optional": True}, default_timeout_seconds=60))["States"]
    wait = states["approve"]
    # THEN a person gets a day, not the tools' default, and a timeout goes to the failure recorder
    assert wait["TimeoutSeconds"] == HUMAN_DEFAULT_TIMEOUT_SECONDS
    assert wait["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "approve.failed"}]
    assert states["approve.failed"]["Parameters"]["Payload"]["mode"] == "failed"


def test_a_wait_longer_than_the_executor_may_run_is_accepted() -> None:
    # GIVEN a week's wait (a tool's timeout may not pass the executor's 890 s; a person's wait may)
    # WHEN it is validated and planned
    definition = compiled(spec_with({"timeout_seconds": 7 * 86400}))
    # THEN it is accepted, and the plan does not price the wait as Lambda time
    assert definition["States"]["approve"]["TimeoutSeconds"] == 7 * 86400
    plan = plan_of(definition)
    assert plan.estimated_cost_usd[1] < 0.05


def test_an_input_step_takes_a_json_schema() -> None:
    # GIVEN input steps with a valid schema, no schema, and a schema that is not JSON Schema
    node = {"id": "ask", "tool": "human.input", "params": {"prompt": "How many?", "schema": {"type": "integer"}}}
    assert validate({"name": "t", "nodes": [node]}, registry)
    assert validate({"name": "t", "nodes": [{**node, "params": {"prompt": "Anything?"}}]}, registry)
    bad = {**node, "params": {"prompt": "How many?", "schema": {"type": "integer", "minimum": "one"}}}
    # WHEN the bad one is validated
    found = problems({"name": "t", "nodes": [bad]})
    # THEN it is refused at its schema
    assert [p["loc"] for p in found] == ["nodes[0].params.schema"]
    assert "JSON Schema" in found[0]["message"]


def test_an_input_schema_may_only_reference_itself() -> None:
    # GIVEN input steps whose schema references another document, and one referencing its own definitions
    outside = {"type": "object", "properties": {"who": {"$ref": "https://example.com/person.json"}}}
    inside = {"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}
    node = {"id": "ask", "tool": "human.input", "params": {"prompt": "Who?", "schema": outside}}
    # WHEN they are validated
    found = problems({"name": "t", "nodes": [node]})
    # THEN the outside reference is refused (nothing is fetched at answer time), the inside one accepted
    assert [p["loc"] for p in found] == ["nodes[0].params.schema"]
    assert "properties/who" in found[0]["message"]
    assert validate({"name": "t", "nodes": [{**node, "params": {"prompt": "n?", "schema": inside}}]}, registry)


@pytest.mark.parametrize(
    ("change", "options", "loc"),
    [
        ({"foreach": "{{ input.items }}"}, {}, "nodes[1].foreach"),
        ({"retry": {"max_attempts": 2}}, {}, "nodes[1].retry"),
        ({}, {"workflow_type": "EXPRESS"}, "nodes[1].tool"),
        ({"params": {}}, {}, "nodes[1].params.prompt"),
        ({"params": {"prompt": "ok?", "extra": 1}}, {}, "nodes[1].params.extra"),
    ],
)
def test_what_a_persons_step_cannot_be(change: dict[str, Any], options: dict[str, Any], loc: str) -> None:
    # GIVEN an approval step asked to run per item, to retry, in an EXPRESS workflow, or with wrong params
    raw = spec_with(change, **options)
    # WHEN it is validated
    found = problems(raw)
    # THEN it is refused at that field
    assert loc in [p["loc"] for p in found], found


def test_the_tools_are_listed_with_their_answers() -> None:
    # GIVEN the tool registry
    # WHEN the people's tools are described
    approval, answer = registry.describe("human.approval"), registry.describe("human.input")
    # THEN their params and outputs are those the respond route produces
    assert approval["params_schema"]["required"] == ["prompt"]
    assert set(approval["output_schema"]["properties"]) == {"approved", "comment", "responded_at"}
    assert set(answer["params_schema"]["properties"]) == {"prompt", "schema"}
    assert set(answer["output_schema"]["properties"]) == {"input", "responded_at"}
