"""State machines the API creates log their executions and are traced, as the stack's parameters say: the
level and log group come from the template (StateMachineLogLevel, the StatesLogs group), tracing from Tracing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3

from local.cloud import LocalCloud

if TYPE_CHECKING:
    import httpx

SPEC = {"name": "observed", "nodes": [{"id": "a", "tool": "util.echo", "params": {"x": 1}}], "edges": []}
LOG_GROUP_ARN = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vendedlogs/states/stepgraph:*"


def described(api: httpx.Client, region: str) -> dict[str, Any]:
    created = api.post("/graphs", json=SPEC)
    assert created.status_code == 201, created.text
    sfn = boto3.client("stepfunctions", region_name=region)
    return dict(sfn.describe_state_machine(stateMachineArn=created.json()["state_machine_arn"]))


def test_a_new_state_machine_logs_errors_to_the_stacks_log_group_and_is_traced(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # WHEN a graph is created on a stack with the template's defaults
    machine = described(api, cloud.region)
    # THEN its state machine logs at ERROR level, without execution data, to the stack's vended-logs group
    assert machine["loggingConfiguration"] == {
        "level": "ERROR",
        "includeExecutionData": False,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": LOG_GROUP_ARN}}],
    }
    # AND X-Ray traces it
    assert machine["tracingConfiguration"] == {"enabled": True}


def test_logging_and_tracing_follow_the_stack_settings() -> None:
    # GIVEN a stack deployed with StateMachineLogLevel=OFF and Tracing=false
    env = {"STEPGRAPH_STATES_LOG_LEVEL": "OFF", "STEPGRAPH_TRACING": "false"}
    with LocalCloud(env=env) as cloud, cloud.client(api_key=cloud.api_key) as api:
        # WHEN a graph is created THEN its state machine neither logs nor is traced
        machine = described(api, cloud.region)
        assert machine["loggingConfiguration"] == {"level": "OFF"}
        assert machine["tracingConfiguration"] == {"enabled": False}
