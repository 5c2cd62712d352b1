"""The local cloud end to end with small handlers of the tests' own: Step Functions in moto invokes
Lambdas in-process, the status-change rule reaches the events function, the API shim speaks HTTP."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from functional_support import ACCOUNT, create_machine, one_task, run_machine, start_machine, task, wait_execution

from local.cloud import LocalCloud

if TYPE_CHECKING:
    from collections.abc import Callable


def wait(probe: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def delayed(call: Callable[..., Any], seconds: float = 0.3) -> Callable[..., Any]:
    """``call``, made to start ``seconds`` late (a busy machine's scheduling, made certain)."""

    def late(*args: Any) -> Any:
        time.sleep(seconds)
        return call(*args)

    return late


def recording_events_function(cloud: LocalCloud) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cloud.register(cloud.function_name("EventsFunction"), lambda event, ctx: seen.append(event))
    return seen


def test_the_table_is_created_from_the_template(cloud: LocalCloud) -> None:
    table = boto3.client("dynamodb").describe_table(TableName=cloud.table_name)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert [g["IndexName"] for g in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=cloud.table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_the_states_role_exists_with_the_templates_trust_policy(cloud: LocalCloud) -> None:
    role = boto3.client("iam").get_role(RoleName="stepgraph-states")["Role"]
    assert role["Arn"] == cloud.states_role_arn
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "states.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_functions_see_the_templates_environment(cloud: LocalCloud) -> None:
    from functions.settings import get_settings

    settings = get_settings()
    assert settings.table == cloud.table_name
    assert settings.executor_arn == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-executor"
    assert settings.states_role_arn == cloud.states_role_arn
    assert settings.prefix == "stepgraph"
    assert settings.api_key == "local-dev-key"


def test_a_state_machine_invokes_a_lambda_in_process(cloud: LocalCloud) -> None:
    # GIVEN a user function registered in the local cloud
    cloud.register("stepgraph-user-double", lambda event, ctx: {"n": event["n"] * 2})
    # WHEN a state machine with two Task states on it runs
    definition = {
        "StartAt": "A",
        "States": {
            "A": task("stepgraph-user-double", Next="B"),
            "B": task(f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:stepgraph-user-double", End=True),
        },
    }
    result = run_machine(cloud, definition, {"n": 3})
    # THEN it succeeds with the function's output, computed twice
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"]) == {"n": 12}


def test_a_raising_function_fails_the_execution_with_its_error_type(cloud: LocalCloud) -> None:
    class QuotaExceeded(Exception):
        pass

    def fail(event: Any, ctx: Any) -> None:
        raise QuotaExceeded("no more")

    cloud.register("stepgraph-user-fail", fail)
    result = run_machine(cloud, one_task("stepgraph-user-fail"), {})
    assert result["status"] == "FAILED"
    assert result["error"] == "QuotaExceeded"
    assert json.loads(result["cause"])["errorMessage"] == "no more"


def test_retry_matches_on_the_error_type(cloud: LocalCloud) -> None:
    # GIVEN a function that fails its first two attempts with a named error
    attempts: list[int] = []

    def flaky(event: Any, ctx: Any) -> dict[str, int]:
        attempts.append(1)
        if len(attempts) < 3:
            raise TimeoutError("not yet")
        return {"attempts": len(attempts)}

    cloud.register("stepgraph-user-flaky", flaky)
    retry = [{"ErrorEquals": ["TimeoutError"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1.0}]
    definition = one_task("stepgraph-user-flaky", Retry=retry)
    # WHEN it runs THEN Step Functions' Retry sees the type and the third attempt succeeds
    result = run_machine(cloud, definition, {})
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"]) == {"attempts": 3}


def test_a_function_over_its_timeout_fails_with_sandbox_timedout(cloud: LocalCloud) -> None:
    release = threading.Event()
    cloud.register("stepgraph-user-slow", lambda event, ctx: release.wait(10), timeout=0.3)
    result = run_machine(cloud, one_task("stepgraph-user-slow"), {})
    release.set()
    assert result["status"] == "FAILED"
    assert result["error"] == "Sandbox.Timedout"


def test_an_unknown_function_is_resource_not_found(cloud: LocalCloud) -> None:
    with pytest.raises(ClientError) as info:
        boto3.client("lambda").invoke(FunctionName="stepgraph-user-missing", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_synchronous_invoke_is_held_to_lambdas_6_mb_request_and_response(cloud: LocalCloud) -> None:
    from local.lambdas import MAX_SYNC_PAYLOAD_BYTES

    # GIVEN a function answering as many bytes as it is asked for
    cloud.register("stepgraph-user-sized", lambda event, ctx: "x" * event["size"])
    client = boto3.client("lambda")

    def answer(size: int) -> dict[str, Any]:
        return client.invoke(FunctionName="stepgraph-user-sized", Payload=json.dumps({"size": size}).encode())

    # WHEN it answers exactly 6 MB (as JSON), and one byte more
    at_limit, over = answer(MAX_SYNC_PAYLOAD_BYTES - 2), answer(MAX_SYNC_PAYLOAD_BYTES - 1)
    # THEN the first comes back whole, the second is the function's error, as Lambda makes it
    assert "FunctionError" not in at_limit and len(at_limit["Payload"].read()) == MAX_SYNC_PAYLOAD_BYTES
    assert over["FunctionError"] == "Unhandled"
    assert json.loads(over["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"
    # AND a request over 6 MB is refused before the function runs
    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName="stepgraph-user-sized", Payload=b'{"size": 1, "pad": "' + b"y" * (6 << 20) + b'"}')
    assert refused.value.response["Error"]["Code"] == "RequestEntityTooLargeException"


def test_parallel_branches_invoke_concurrently(cloud: LocalCloud) -> None:
    # GIVEN a function that only returns once 4 calls are in flight together
    barrier = threading.Barrier(4, timeout=10)

    def meet(event: Any, ctx: Any) -> int:
        barrier.wait()
        return int(event["i"])

    cloud.register("stepgraph-user-meet", meet, timeout=15)
    branches = [
        {
            "StartAt": f"B{i}",
            "States": {
                f"B{i}": {
                    **task("stepgraph-user-meet", End=True),
                    "Parameters": {"FunctionName": "stepgraph-user-meet", "Payload": {"i": i}},
                }
            },
        }
        for i in range(4)
    ]
    result = run_machine(
        cloud, {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": branches, "End": True}}}, {}
    )
    # THEN the barrier released (they ran at once) and each branch got its own answer
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"]) == [0, 1, 2, 3]


def test_terminal_statuses_reach_the_events_function_with_the_eventbridge_shape(cloud: LocalCloud) -> None:
    seen = recording_events_function(cloud)
    cloud.register("stepgraph-user-ok", lambda event, ctx: {"done": True})
    cloud.register("stepgraph-user-bad", lambda event, ctx: 1 / 0)
    ok = run_machine(cloud, one_task("stepgraph-user-ok"), {"x": 1}, "stepgraph-g_ok")
    bad = run_machine(cloud, one_task("stepgraph-user-bad"), {}, "stepgraph-g_bad")
    assert cloud.drain_events()
    # THEN one event per execution, in the order they ended, with the fields EventBridge sends
    assert [e["detail"]["executionArn"] for e in seen] == [ok["executionArn"], bad["executionArn"]]
    first, second = seen
    assert first["source"] == "aws.states"
    assert first["detail-type"] == "Step Functions Execution Status Change"
    assert first["account"] == ACCOUNT and first["region"] == "us-east-1"
    assert first["resources"] == [ok["executionArn"]]
    detail = first["detail"]
    assert detail["status"] == "SUCCEEDED"
    assert detail["name"] == "e1"
    assert detail["stateMachineArn"] == f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:stepgraph-g_ok"
    assert json.loads(detail["input"]) == {"x": 1}
    assert json.loads(detail["output"]) == {"done": True}
    assert isinstance(detail["startDate"], int) and detail["stopDate"] >= detail["startDate"]
    assert second["detail"]["status"] == "FAILED"
    assert second["detail"]["error"] == "ZeroDivisionError"
    assert second["detail"]["output"] is None


def test_stopped_executions_are_reported_aborted(cloud: LocalCloud) -> None:
    seen = recording_events_function(cloud)
    release = threading.Event()
    started = threading.Event()

    def hold(event: Any, ctx: Any) -> None:
        started.set()
        release.wait(10)

    cloud.register("stepgraph-user-hold", hold, timeout=15)
    sfn = boto3.client("stepfunctions")
    execution = start_machine(cloud, one_task("stepgraph-user-hold"), name="stepgraph-g_stop", execution="s1")
    assert started.wait(10)
    # WHEN the execution is stopped while its Lambda task is still running
    sfn.stop_execution(executionArn=execution)
    # THEN it is ABORTED at once, as in AWS (moto alone keeps it RUNNING until the task returns)
    assert sfn.describe_execution(executionArn=execution)["status"] == "ABORTED"
    assert cloud.drain_events()
    assert [e["detail"]["status"] for e in seen] == ["ABORTED"]
    # AND when the task returns later, no second event is sent
    release.set()
    wait(lambda: not any(t.name.startswith("lambda-stepgraph-user-hold") for t in threading.enumerate()), 10)
    time.sleep(0.2)
    assert cloud.drain_events()
    assert [e["detail"]["status"] for e in seen] == ["ABORTED"]
    assert sfn.describe_execution(executionArn=execution)["status"] == "ABORTED"


def test_an_execution_stopped_before_moto_has_begun_it_is_aborted(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an execution whose interpreter thread is slow to begin (as on a loaded machine)
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    seen = recording_events_function(cloud)
    cloud.register("stepgraph-user-ok", lambda event, ctx: event)
    monkeypatch.setattr(ExecutionWorker, "_execution_logic", delayed(ExecutionWorker._execution_logic))
    sfn = boto3.client("stepfunctions")
    definition = {
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "Seconds": 5, "Next": "A"}, "A": task("stepgraph-user-ok", End=True)},
    }
    execution = start_machine(cloud, definition, name="stepgraph-g_young", execution="y1")
    # WHEN it is stopped at once
    sfn.stop_execution(executionArn=execution)
    # THEN the stop succeeds and the execution is ABORTED, with one status-change event
    assert sfn.describe_execution(executionArn=execution)["status"] == "ABORTED"
    assert cloud.drain_events()
    assert [e["detail"]["status"] for e in seen] == ["ABORTED"]


def _publish_late(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    # the terminal status shows in DescribeExecution before the status-change event is queued
    monkeypatch.setattr(cloud, "_execution_ended", delayed(cloud._execution_ended))


def _end_inside_start_execution(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    # the execution runs to its end before StartExecution returns (a fast one on a busy machine)
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    monkeypatch.setattr(ExecutionWorker, "start", lambda worker: worker._execution_logic())


@pytest.mark.parametrize("timing", [_publish_late, _end_inside_start_execution], ids=lambda f: f.__name__[1:])
def test_every_status_change_event_is_drained_however_the_threads_are_scheduled(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch, timing: Callable[[LocalCloud, pytest.MonkeyPatch], None]
) -> None:
    # GIVEN an execution whose end races its status-change event
    seen = recording_events_function(cloud)
    cloud.register("stepgraph-user-ok", lambda event, ctx: event)
    timing(cloud, monkeypatch)
    # WHEN it runs, and the events are drained as soon as DescribeExecution reports its end
    result = run_machine(cloud, one_task("stepgraph-user-ok"), {})
    assert result["status"] == "SUCCEEDED"
    assert cloud.drain_events()
    # THEN its event has been delivered, once
    assert [e["detail"]["executionArn"] for e in seen] == [result["executionArn"]]


def test_an_execution_started_without_a_name_gets_a_unique_one(cloud: LocalCloud) -> None:
    cloud.register("stepgraph-user-ok", lambda event, ctx: {})
    sfn = boto3.client("stepfunctions")
    arn = create_machine(cloud, one_task("stepgraph-user-ok"), "stepgraph-g_anon")
    first = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    second = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
    assert first != second
    assert not first.endswith(":None")


def test_state_machines_outside_the_stack_prefix_do_not_match_the_rule(cloud: LocalCloud) -> None:
    seen = recording_events_function(cloud)
    cloud.register("stepgraph-user-ok", lambda event, ctx: {})
    run_machine(cloud, one_task("stepgraph-user-ok"), {}, "someone-else")
    assert cloud.drain_events()
    assert seen == []
    assert len(cloud.bus.unmatched) == 1


def test_a_failing_events_function_is_retried_then_dead_lettered(cloud: LocalCloud) -> None:
    calls: list[str] = []

    def broken(event: Any, ctx: Any) -> None:
        calls.append(event["detail"]["status"])
        raise RuntimeError("store down")

    cloud.register(cloud.function_name("EventsFunction"), broken)
    cloud.register("stepgraph-user-ok", lambda event, ctx: {})
    run_machine(cloud, one_task("stepgraph-user-ok"), {})
    assert cloud.drain_events()
    # THEN 1 attempt + MaximumRetryAttempts (2) of the template, then the dead-letter list
    assert calls == ["SUCCEEDED"] * 3
    assert len(cloud.bus.dead_letters) == 1
    assert "store down" in (cloud.bus.dead_letters[0].error or "")


def test_many_executions_deliver_every_event_exactly_once(cloud: LocalCloud) -> None:
    seen = recording_events_function(cloud)
    cloud.register("stepgraph-user-ok", lambda event, ctx: event)
    definition = one_task("stepgraph-user-ok")
    arns = [start_machine(cloud, definition, {"i": i}, "stepgraph-g_many", f"m{i}") for i in range(20)]
    for arn in arns:
        wait_execution(arn)
    assert cloud.drain_events()
    assert sorted(e["detail"]["executionArn"] for e in seen) == sorted(arns)


def test_only_one_local_cloud_at_a_time(cloud: LocalCloud) -> None:
    with pytest.raises(RuntimeError, match="another LocalCloud is running in this process"):
        LocalCloud().start()
    # and the running one is untouched
    assert boto3.client("dynamodb").describe_table(TableName=cloud.table_name)["Table"]["TableName"] == cloud.table_name


def test_environment_is_restored_after_stop() -> None:
    import os

    before = os.environ.get("STEPGRAPH_TABLE")
    with LocalCloud():
        assert os.environ["STEPGRAPH_TABLE"] == "stepgraph-local"
    assert os.environ.get("STEPGRAPH_TABLE") == before


def test_a_task_on_an_unknown_function_fails_with_lambda_resource_not_found(cloud: LocalCloud) -> None:
    # GIVEN a Task on a function nobody registered (moto's own Lambda would have echoed the payload)
    result = run_machine(cloud, one_task("stepgraph-user-nobody"), {})
    # THEN it fails as in AWS
    assert result["status"] == "FAILED"
    assert result["error"] == "Lambda.ResourceNotFoundException"
    assert "Function not found" in result["cause"]


def test_stopping_the_cloud_aborts_executions_and_lets_running_handlers_finish_inside_it() -> None:
    # GIVEN an execution whose Lambda task is still running when the cloud stops
    outcomes: list[str] = []
    started = threading.Event()
    with LocalCloud(shutdown_grace=10) as cloud:

        def slow_writer(event: Any, ctx: Any) -> None:
            started.set()
            time.sleep(0.5)
            try:
                boto3.client("dynamodb").put_item(
                    TableName=cloud.table_name, Item={"pk": {"S": "late"}, "sk": {"S": "write"}}
                )
                outcomes.append("written")
            except Exception as exc:  # a write after the mock stopped would try the network
                outcomes.append(type(exc).__name__)

        cloud.register("stepgraph-user-slow-writer", slow_writer, timeout=15)
        definition = one_task("stepgraph-user-slow-writer")
        execution = start_machine(cloud, definition, name="stepgraph-g_late", execution="late")
        assert started.wait(10)
    # THEN the handler finished while the cloud was still up, and the execution was aborted
    assert outcomes == ["written"]
    assert cloud.dispatcher.in_flight == 0
    assert [e.exec_arn for e in cloud._executions if e.exec_status.value == "ABORTED"] == [execution]


def test_dynamodb_requests_are_atomic_under_concurrency(cloud: LocalCloud) -> None:
    # GIVEN one thread creating items with UpdateItem (moto puts a key-only item, then applies the update)
    # and another querying the same partition meanwhile, as the executor and the API do during a run
    done = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        client = boto3.client("dynamodb")
        try:
            for i in range(80):
                client.update_item(
                    TableName=cloud.table_name,
                    Key={"pk": {"S": "RUN#r"}, "sk": {"S": f"NODE#{i:06d}"}},
                    UpdateExpression="SET #s = :s, node = :n",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": "RUNNING"}, ":n": {"S": "x"}},
                )
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    partial: list[dict[str, Any]] = []
    reader = boto3.client("dynamodb")
    while not done.is_set():
        try:
            items = reader.query(
                TableName=cloud.table_name,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "RUN#r"}},
            )["Items"]
        except Exception as exc:  # moto alone: "dictionary changed size during iteration"
            errors.append(repr(exc))
            break
        partial += [item for item in items if "status" not in item or "node" not in item]
    thread.join(30)
    # THEN no reader ever sees a half-made item and no request fails, as in AWS
    assert errors == []
    assert partial == []


def test_a_query_reads_what_its_key_condition_selects_in_sort_key_order(cloud: LocalCloud) -> None:
    # GIVEN a partition of many sort keys (and another partition with keys that would match)
    table = boto3.resource("dynamodb").Table(cloud.table_name)
    keys = [f"ITEM#n#0000#{i:06d}" for i in range(300)] + ["NODE#a#0000", "NODE#b#0000", "NODE#\u00e9#0000", "SEQ"]
    with table.batch_writer() as batch:
        for sk in reversed(keys):
            batch.put_item(Item={"pk": "RUN#r", "sk": sk})
        batch.put_item(Item={"pk": "RUN#other", "sk": "NODE#a#0000"})
    pk = Key("pk").eq("RUN#r")
    sk = Key("sk")
    conditions = {
        "begins_with": (sk.begins_with("NODE#"), lambda k: k.startswith("NODE#")),
        "=": (sk.eq("SEQ"), lambda k: k == "SEQ"),
        "<": (sk.lt("ITEM#n#0000#000003"), lambda k: k < "ITEM#n#0000#000003"),
        "<=": (sk.lte("ITEM#n#0000#000003"), lambda k: k <= "ITEM#n#0000#000003"),
        ">": (sk.gt("NODE#a"), lambda k: k > "NODE#a"),
        ">=": (sk.gte("NODE#b#0000"), lambda k: k >= "NODE#b#0000"),
        "between": (
            sk.between("ITEM#n#0000#000100", "ITEM#n#0000#000104"),
            lambda k: "ITEM#n#0000#000100" <= k <= "ITEM#n#0000#000104",
        ),
    }
    for name, (condition, selects) in conditions.items():
        # WHEN the partition is queried with each kind of key condition
        found = [item["sk"] for item in table.query(KeyConditionExpression=pk & condition)["Items"]]
        # THEN exactly the selected keys come back, in sort key order, and none of the other partition
        assert found == sorted(k for k in keys if selects(k)), name
