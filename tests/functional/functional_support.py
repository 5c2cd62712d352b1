"""What functional tests share: waiting for a run through the API, small state machines on the local cloud, and
hooks on an AWS client's calls."""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import httpx

    from local.cloud import LocalCloud

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}
ACCOUNT = "123456789012"


def wait_for_run(
    api: httpx.Client,
    run_id: str,
    timeout: float = 30.0,
    until: set[str] = TERMINAL,
    cloud: LocalCloud | None = None,
) -> dict[str, Any]:
    """The run once its status is in ``until`` (or as it is at ``timeout``); with ``cloud``, read again
    after its status-change event has been handled."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        run = dict(response.json())
        if run["status"] in until or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if cloud is None:
        return run
    assert cloud.drain_events(10)
    return dict(api.get(f"/runs/{run_id}").json())


def task(function: str, **extra: Any) -> dict[str, Any]:
    """A Task state invoking ``function`` through the optimized ``lambda:invoke`` integration."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload.$": "$"},
        "OutputPath": "$.Payload",
        **extra,
    }


def one_task(function: str, **extra: Any) -> dict[str, Any]:
    """A state machine definition of one Task invoking ``function``."""
    return {"StartAt": "A", "States": {"A": task(function, End=True, **extra)}}


def create_machine(cloud: LocalCloud, definition: dict[str, Any], name: str) -> str:
    """The ARN of state machine ``name`` with ``definition`` (created, or the one already of that name)."""
    sfn = boto3.client("stepfunctions")
    try:
        created = sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=cloud.states_role_arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "StateMachineAlreadyExists":
            raise
        return f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{name}"
    return str(created["stateMachineArn"])


def start_machine(
    cloud: LocalCloud,
    definition: dict[str, Any],
    payload: Any = None,
    name: str = "stepgraph-g_t",
    execution: str = "e1",
) -> str:
    """Start ``execution`` of state machine ``name`` (created if needed); its execution ARN."""
    arn = create_machine(cloud, definition, name)
    started = boto3.client("stepfunctions").start_execution(
        stateMachineArn=arn, name=execution, input=json.dumps(payload if payload is not None else {})
    )
    return str(started["executionArn"])


def wait_execution(execution_arn: str, timeout: float = 30) -> dict[str, Any]:
    """DescribeExecution once the execution has ended (asserting it does within ``timeout``)."""
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{execution_arn} still running after {timeout} s"
        time.sleep(0.02)
    return dict(described)


def run_machine(
    cloud: LocalCloud, definition: dict[str, Any], payload: Any, name: str = "stepgraph-g_t", execution: str = "e1"
) -> dict[str, Any]:
    """Start an execution and return its DescribeExecution once it has ended."""
    return wait_execution(start_machine(cloud, definition, payload, name, execution))


def start_run(api: httpx.Client, spec: dict[str, Any], run_input: Any = None) -> str:
    """Create a graph from ``spec`` and start a run of it through the API; the run id."""
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    started = api.post(f"/graphs/{created.json()['graph_id']}/runs", json={"input": run_input or {}})
    assert started.status_code == 202, started.text
    return str(started.json()["run_id"])


def run_graph(api: httpx.Client, spec: dict[str, Any], run_input: Any = None, timeout: float = 60.0) -> dict[str, Any]:
    """Create a graph, run it, and return the run once it has ended."""
    return wait_for_run(api, start_run(api, spec, run_input), timeout)


def echo(node_id: str, **params: Any) -> dict[str, Any]:
    """A ``util.echo`` node of a spec."""
    return {"id": node_id, "tool": "util.echo", "params": params}


def history(execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution, as GetExecutionHistory pages them."""
    sfn = boto3.client("stepfunctions")
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        more = {"nextToken": token} if token else {}
        page = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000, **more)
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


@contextlib.contextmanager
def hooked(client: Any, event_name: str, handler: Callable[..., None]) -> Iterator[None]:
    """``handler`` on the botocore event ``event_name`` of ``client`` inside the block: e.g. to land another
    request in the middle of one (``before-call.sfn.StartExecution``)."""
    unique_id = f"hooked-{event_name}"
    client.meta.events.register(event_name, handler, unique_id=unique_id)
    try:
        yield
    finally:
        client.meta.events.unregister(event_name, unique_id=unique_id)
