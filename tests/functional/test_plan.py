"""The plan of a graph (DESIGN.md): computed from the spec, checked against real runs in the local cloud."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import functional_support
import pytest
from functional_support import echo, history

if TYPE_CHECKING:
    import httpx


def child_counts(execution_arn: str, definition: dict[str, Any]) -> int:
    """Task states the children of a distributed Map entered (moto cannot list child executions: their count
    comes from DescribeMapRun, each running the Map's item processor once)."""
    maps = [
        s
        for s in definition["States"].values()
        if s["Type"] == "Map" and s["ItemProcessor"].get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED"
    ]
    if not maps:
        return 0
    sfn = boto3.client("stepfunctions")
    runs = sfn.list_map_runs(executionArn=execution_arn)["mapRuns"]
    children = sum(sfn.describe_map_run(mapRunArn=r["mapRunArn"])["executionCounts"]["total"] for r in runs)
    return children * sum(1 for s in maps[0]["ItemProcessor"]["States"].values() if s["Type"] == "Task")


CHAIN = {
    "nodes": [echo("a", v="{{ input.x }}"), echo("b", v="{{ a.v }}"), echo("c", v="{{ b.v }}")],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
}
FAN_OUT = {
    "nodes": [echo("a"), *(echo(f"b{i}", i=i) for i in range(4)), echo("d")],
    "edges": [*({"from": "a", "to": f"b{i}"} for i in range(4)), *({"from": f"b{i}", "to": "d"} for i in range(4))],
}
FOREACH = {
    "nodes": [
        {"id": "each", "tool": "util.echo", "foreach": "{{ input.items }}", "params": {"v": "{{ item }}"}},
        echo("after", n="{{ each }}"),
    ],
    "edges": [{"from": "each", "to": "after"}],
}
LOOP = {
    "nodes": [echo("draft", n=1), echo("review", ok=False), echo("publish")],
    "edges": [
        {"from": "draft", "to": "review"},
        {"from": "review", "to": "draft", "when": "review.ok == false", "max_iterations": 4},
        {"from": "review", "to": "publish", "when": "review.ok == true"},
    ],
}


@pytest.mark.parametrize("spec", [CHAIN, FAN_OUT, FOREACH, LOOP], ids=["chain", "fan-out", "foreach", "loop"])
def test_the_plan_bounds_a_real_run_within_a_factor_of_two(api: httpx.Client, spec: dict[str, Any]) -> None:
    # GIVEN a graph, created through the API with its plan (foreach lists assumed 10 items long)
    created = api.post("/graphs", json={"name": "planned", **spec})
    assert created.status_code == 201, created.text
    plan = created.json()["plan"]
    assert plan["assumptions"][0] == "foreach lists of 10 items"
    # WHEN it runs (a 10-item list, loops to their bound: the worst case the plan prices)
    run_id = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": {"x": 1, "items": list(range(10))}})
    assert run_id.status_code == 202, run_id.text
    run = functional_support.wait_for_run(api, run_id.json()["run_id"], timeout=90)
    assert run["status"] == "SUCCEEDED", run
    events = history(run["execution_arn"])
    definition = api.get(f"/graphs/{run['graph_id']}/definition").json()["definition"]
    children = child_counts(run["execution_arn"], definition)  # a distributed Map's children are billed too
    transitions = sum(1 for e in events if e["type"].endswith("StateEntered")) + children
    invocations = sum(1 for e in events if e["type"] == "TaskScheduled") + children
    # THEN the worst case is at least what happened, and at most twice it
    assert len(events) <= plan["history_events_max"] <= 2 * len(events), (len(events), plan)
    assert transitions <= plan["transitions"]["max"] <= 2 * transitions, (transitions, plan)
    assert plan["lambda_invocations"]["min"] <= invocations <= plan["lambda_invocations"]["max"], (invocations, plan)
    assert 0 < plan["estimated_cost_usd"]["min"] <= plan["estimated_cost_usd"]["max"]
    # AND GET /graphs/{id} serves the same plan
    assert api.get(f"/graphs/{run['graph_id']}").json()["plan"] == plan


def test_validate_returns_the_plan_of_a_dry_run(api: httpx.Client) -> None:
    # WHEN a chain is validated
    answer = api.post("/graphs/validate", json={"name": "dry", **CHAIN})
    # THEN the answer carries its plan: three Tasks, 3 transitions and calls, 17 history events at most
    assert answer.status_code == 200, answer.text
    plan = answer.json()["plan"]
    assert answer.json()["valid"] is True
    assert (plan["states"], plan["transitions"], plan["lambda_invocations"]) == (
        3,
        {"min": 3, "max": 3},
        {"min": 3, "max": 3},
    )
    assert plan["history_events_max"] == 17
    assert plan["definition_bytes"] > 1000


def machines() -> set[str]:
    return {m["stateMachineArn"] for m in boto3.client("stepfunctions").list_state_machines()["stateMachines"]}


def test_a_loop_aws_could_not_finish_is_refused_naming_the_history_limit(api: httpx.Client) -> None:
    # GIVEN a two-node loop allowed 10,000 rounds (about 24 history events a round: over 25,000)
    spec = {
        "name": "endless",
        "nodes": [echo("a"), echo("b")],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a", "max_iterations": 10_000}],
    }
    before = machines()
    # WHEN it is created, or validated
    created = api.post("/graphs", json=spec)
    validated = api.post("/graphs/validate", json=spec)
    # THEN 422 names the limit, nothing was created, and the dry run says why with the plan
    assert created.status_code == 422, created.text
    error = created.json()["error"]
    assert "25,000 history events" in error["message"]
    assert error["details"][0]["loc"] == "plan.history_events_max"
    assert machines() == before
    assert validated.json()["valid"] is False
    assert validated.json()["plan"]["history_events_max"] > 25_000


def test_a_spec_compiling_over_the_definition_limit_is_refused_naming_it(api: httpx.Client) -> None:
    # GIVEN 500 optional foreach nodes: a 164 KB spec whose definition would be about 1.7 MB
    nodes = [
        {
            "id": f"n{i:03d}",
            "tool": "util.echo",
            "foreach": "{{ input.items }}",
            "optional": True,
            "params": {"t": "x" * 200, "v": "{{ item }}"},
        }
        for i in range(500)
    ]
    before = machines()
    created = api.post("/graphs", json={"name": "huge", "nodes": nodes})
    # THEN 422 names AWS's definition limit (never a 502 from CreateStateMachine), and nothing was created
    assert created.status_code == 422, created.text
    assert "1,048,576-byte definition limit" in created.json()["error"]["message"]
    assert machines() == before


def test_the_cli_shows_the_plan_beside_the_diagram(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the echo-chain example WHEN validated with the CLI
    from pathlib import Path

    import stepgraph_cli as cli

    example = Path(__file__).resolve().parents[2] / "examples" / "echo-chain.json"
    assert cli.main(["graphs", "validate", str(example)], client=api) == 0
    captured = capsys.readouterr()
    # THEN the diagram is on stdout and the plan on stderr: two Tasks, 12 history events at most
    assert "flowchart" in captured.out
    assert "plan: 2 states" in captured.err
    assert "2 transitions, 2 Lambda calls, at most 12 history events" in captured.err
