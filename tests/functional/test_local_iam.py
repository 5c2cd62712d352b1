"""The local IAM audit: calls made locally are checked against what template.yaml grants in AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from functional_support import one_task, run_machine, wait_for_run

from local.cloud import LocalCloud

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_task(cloud: LocalCloud, function: str, name: str = "stepgraph-g_iam") -> dict[str, Any]:
    return run_machine(cloud, one_task(function), {}, name, "e")


def test_a_run_through_the_api_needs_nothing_the_template_does_not_grant(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN the echo example created, run to the end, listed, read and deleted through the API
    graph = api.post("/graphs", json=json.loads((EXAMPLES / "echo-chain.json").read_text())).json()
    run = api.post(f"/graphs/{graph['graph_id']}/runs", json={"input": {"message": "hi"}}).json()
    assert wait_for_run(api, run["run_id"], cloud=cloud)["status"] != "RUNNING"
    api.get("/runs")
    api.get(f"/runs/{run['run_id']}/events")
    api.get("/graphs")
    api.delete(f"/graphs/{graph['graph_id']}")
    # THEN every call each function and the state machine made is allowed by its policy in template.yaml
    made = {(c.principal, c.action) for c in cloud.iam.calls}
    assert {
        ("ApiFunction", "states:CreateStateMachine"),
        ("ApiFunction", "iam:PassRole"),
        ("ApiFunction", "states:StartExecution"),
        ("ExecutorFunction", "dynamodb:UpdateItem"),
        ("StreamFunction", "dynamodb:PutItem"),
        ("StatesRole", "lambda:InvokeFunction"),
    } <= made
    assert cloud.iam.denials == []


def test_the_states_role_may_not_invoke_other_functions() -> None:
    # GIVEN a function outside the user-function pattern (stepgraph-user-*)
    with LocalCloud(iam="audit") as cloud:
        cloud.register("someone-elses-function", lambda event, ctx: {"ok": True})
        # WHEN a Task invokes it (audit mode: the call goes through, the denial is recorded)
        assert run_task(cloud, "someone-elses-function")["status"] == "SUCCEEDED"
    (denial,) = cloud.iam.denials
    assert (denial.principal, denial.action) == ("StatesRole", "lambda:InvokeFunction")
    assert denial.resource.endswith(":function:someone-elses-function")


@pytest.fixture
def strict_cloud() -> Iterator[LocalCloud]:
    with LocalCloud(iam="enforce") as local_cloud:
        yield local_cloud


def test_enforcing_fails_the_task_as_aws_would(strict_cloud: LocalCloud) -> None:
    strict_cloud.register("someone-elses-function", lambda event, ctx: {"ok": True})
    result = run_task(strict_cloud, "someone-elses-function")
    assert result["status"] == "FAILED"
    assert result["error"] == "Lambda.AccessDeniedException"
    assert "lambda:InvokeFunction" in result["cause"]


def test_enforcing_refuses_a_functions_call_outside_its_policy(strict_cloud: LocalCloud) -> None:
    # GIVEN the executor replaced by a handler that scans the table (the executor may not Scan)
    def scanner(event: Any, ctx: Any) -> str:
        try:
            boto3.client("dynamodb").scan(TableName=strict_cloud.table_name)
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        return "scanned"

    strict_cloud.register(strict_cloud.function_name("ExecutorFunction"), scanner)
    # WHEN invoked THEN the scan is refused as in AWS
    assert strict_cloud.invoke("ExecutorFunction", {}).json() == "AccessDeniedException"
    assert [(d.principal, d.action) for d in strict_cloud.iam.denials] == [("ExecutorFunction", "dynamodb:Scan")]
