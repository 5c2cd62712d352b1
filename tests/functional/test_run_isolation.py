"""Runs can't reach each other through the API: no graph may call the stack's own functions, an execution
that is not a run's own cannot write into it, and reference-shaped user data is plain data."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from functional_support import run_machine, task, wait_for_run

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

ACCOUNT = "123456789012"


def start(api: httpx.Client, spec: dict[str, Any], run_input: dict[str, Any]) -> dict[str, Any]:
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    started = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": run_input})
    assert started.status_code == 202, started.text
    return dict(started.json())


@pytest.mark.parametrize(
    "target",
    [
        "stepgraph-executor",
        "stepgraph-api",
        "stepgraph-events",
        "stepgraph-anything-else",
        "STEPGRAPH-Executor",
        " stepgraph-executor ",
        "stepgraph-executor:$LATEST",
        "stepgraph-executor:live",
        f"{ACCOUNT}:function:stepgraph-executor",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-executor",
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-api:7",
        f"arn:aws-cn:lambda:cn-north-1:{ACCOUNT}:function:Stepgraph-Events",
    ],
)
def test_a_lambda_node_naming_the_stacks_own_function_is_refused(api: httpx.Client, target: str) -> None:
    # GIVEN a graph whose lambda: node names one of the stack's own functions, in some name or ARN form
    spec = {"name": "forge", "nodes": [{"id": "injected", "tool": f"lambda:{target}", "params": {"node": "x"}}]}

    # WHEN it is created THEN it is refused with 422 naming the node
    response = api.post("/graphs", json=spec)
    assert response.status_code == 422, response.text
    assert "own functions" in response.text and "injected" in response.text
    # AND validation says the same
    checked = api.post("/graphs/validate", json=spec).json()
    assert checked["valid"] is False
    assert checked["errors"][0]["loc"] == "nodes[0].tool" and "own functions" in checked["errors"][0]["message"]


def test_a_users_own_function_is_still_accepted(api: httpx.Client) -> None:
    spec = {"name": "mine", "nodes": [{"id": "call", "tool": "lambda:stepgraph-user-resize", "params": {}}]}
    assert api.post("/graphs/validate", json=spec).json()["valid"] is True


def test_an_execution_that_is_not_the_runs_own_cannot_write_into_it(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a finished run
    victim = start(api, {"name": "victim", "nodes": [{"id": "a", "tool": "util.echo", "params": {"v": 1}}]}, {})
    before = wait_for_run(api, victim["run_id"], cloud=cloud)
    assert before["status"] == "SUCCEEDED"

    # WHEN another execution (a state machine someone made that may invoke the executor) sends the executor a
    # well-formed request naming the victim run
    ctx = {"node": "injected", "tool": "util.echo", "params": {"owned": True}, "retry": {}, "timeout_seconds": 5}
    doc = {"run": {"run_id": victim["run_id"], "graph_id": victim["graph_id"], "version": 1}}
    doc |= {"input": {}, "state": {}, "results": {}, "loops": {}, "sd": {}}
    forged = task(cloud.function_name("ExecutorFunction"), End=True)
    forged["Parameters"]["Payload"] = {
        "node": "injected",
        "tool": "util.echo",
        "ctx": json.dumps(ctx),
        "doc": doc,
        "execution.$": "$$.Execution.Id",
    }
    del forged["Parameters"]["Payload.$"]
    machine = f"stepgraph-{victim['graph_id']}-evil"
    ended = run_machine(cloud, {"StartAt": "A", "States": {"A": forged}}, {}, name=machine, execution="evil1")

    # THEN the execution fails with stepgraph.InvalidRequest and the victim run is unchanged
    assert ended["status"] == "FAILED"
    assert ended.get("error") == "stepgraph.InvalidRequest", ended
    after = api.get(f"/runs/{victim['run_id']}").json()
    assert set(after["nodes"]) == {"a"}
    events = api.get(f"/runs/{victim['run_id']}/events").json()["events"]
    assert all(e.get("node") != "injected" for e in events)


def test_a_reference_to_another_run_in_the_input_comes_back_as_sent(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run with a large output, stored by reference (the table item names it)
    big = start(api, {"name": "big", "nodes": [{"id": "big", "tool": "util.echo", "params": {"t": "s" * 20_000}}]}, {})
    assert wait_for_run(api, big["run_id"], cloud=cloud)["status"] == "SUCCEEDED"
    table = boto3.resource("dynamodb", region_name=cloud.region).Table(cloud.table_name)
    record = table.get_item(Key={"pk": f"RUN#{big['run_id']}", "sk": "NODE#big#0001"})["Item"]
    stolen = json.loads(str(record["output_json"]))["t"]
    assert "$stepgraph_ref" in stolen

    # WHEN another run's input holds that reference and an echo node returns it
    spec = {"name": "thief", "nodes": [{"id": "echo", "tool": "util.echo", "params": {"got": "{{ input.ref }}"}}]}
    thief = start(api, spec, {"ref": stolen})
    run = wait_for_run(api, thief["run_id"], cloud=cloud)

    # THEN the node returns the reference-shaped object as sent, not the other run's data
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["echo"]["output"] == {"got": stolen}
    assert "sss" not in json.dumps(run)


def test_a_literal_reference_in_params_is_read_back_as_written(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN params holding a literal reference-shaped object (naming a blob that does not exist)
    literal = {"$stepgraph_ref": {"run_id": "r_0000000000000000", "node": "x", "iteration": 1, "field": "t"}}
    spec = {"name": "literal", "nodes": [{"id": "echo", "tool": "util.echo", "params": {"value": literal}}]}

    # WHEN the run ends
    started = start(api, spec, {"also": literal})
    run = wait_for_run(api, started["run_id"], cloud=cloud)

    # THEN GET /runs/{id} answers 200 with the object as written, every time
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["echo"]["output"] == {"value": literal}
    assert run["input"] == {"also": literal}
    assert api.get(f"/runs/{started['run_id']}").status_code == 200


def test_an_http_get_node_setting_content_length_is_refused_at_creation(api: httpx.Client) -> None:
    # GIVEN an http.get node whose params set the request's Content-Length
    node = {
        "id": "fetch",
        "tool": "http.get",
        "params": {"url": "https://example.com/", "headers": {"Content-Length": "5"}},
    }

    # WHEN the graph is created THEN it is refused with 422 naming the header param
    response = api.post("/graphs", json={"name": "framing", "nodes": [node]})
    assert response.status_code == 422, response.text
    assert "Content-Length" in response.text and "nodes[0].params.headers" in response.text
