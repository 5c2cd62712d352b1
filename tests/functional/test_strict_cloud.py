"""The local cloud is as strict as AWS (DESIGN.md, "AWS-strict local cloud"): each rule, shown by a state machine
that moto alone would run to SUCCEEDED (or accept) and AWS would not."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from functional_support import create_machine, run_machine, start_machine, task, wait_execution

from bench.history import LOOP
from local import strict
from local.strict import MAX_DEFINITION_BYTES, MAX_HISTORY_EVENTS, MAX_INLINE_MAP_CONCURRENCY, MAX_PAYLOAD_BYTES

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

BIG = "x" * (MAX_PAYLOAD_BYTES // 2 + 1000)  # two of these are over the limit, one is not
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Recovered"}]
RECOVERED = {"Type": "Pass", "End": True}


def echo(function: str, cloud: LocalCloud) -> str:
    cloud.register(function, lambda event, ctx: event)
    return function


# ------------------------------------------------------------------ payload limits


def test_a_task_whose_parameters_are_over_the_limit_fails_even_if_its_output_is_small(cloud: LocalCloud) -> None:
    # GIVEN a Task whose Parameters hold the input twice (its result is dropped by ResultSelector)
    fn = echo("stepgraph-user-echo", cloud)
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": task(
                fn,
                Parameters={"FunctionName": fn, "Payload": {"a.$": "$.x", "b.$": "$.x"}},
                ResultSelector={"called": True},
                ResultPath="$.result",
                OutputPath="$.result",
                End=True,
            )
        },
    }
    # WHEN it runs on an input under the limit
    described = run_machine(cloud, definition, {"x": BIG})
    # THEN the execution fails as in AWS, where a task's input is limited when it is scheduled
    assert described["status"] == "FAILED"
    assert described["error"] == "States.DataLimitExceeded"
    assert "Parameters" in described["cause"]


def test_a_parallels_combined_output_over_the_limit_fails_the_execution_uncaught(cloud: LocalCloud) -> None:
    # GIVEN a Parallel of two branches passing their input through, its result shrunk by ResultSelector,
    # and a Catch on States.ALL
    branch = {"StartAt": "Same", "States": {"Same": {"Type": "Pass", "End": True}}}
    definition = {
        "StartAt": "Join",
        "States": {
            "Join": {
                "Type": "Parallel",
                "Branches": [branch, branch],
                "ResultSelector": {"joined": True},
                "ResultPath": "$.joined",
                "Catch": CATCH_ALL,
                "End": True,
            },
            "Recovered": RECOVERED,
        },
    }
    # WHEN the two branch outputs together pass 256 KiB
    described = run_machine(cloud, definition, {"x": BIG})
    # THEN the execution fails with States.DataLimitExceeded, which no Catch can catch
    assert described["status"] == "FAILED"
    assert described["error"] == "States.DataLimitExceeded"
    assert "combined branch output" in described["cause"]


def test_a_maps_combined_output_over_the_limit_fails_the_execution(cloud: LocalCloud) -> None:
    # GIVEN a Map whose iterations each output the input's pad (over a quarter of the limit), result shrunk
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"pad.$": "$.pad"},
                "ItemProcessor": {"StartAt": "Same", "States": {"Same": {"Type": "Pass", "End": True}}},
                "ResultSelector": {"done": True},
                "ResultPath": "$.done",
                "OutputPath": "$.done",
                "End": True,
            }
        },
    }
    pad = "y" * (MAX_PAYLOAD_BYTES // 4 + 100)
    # WHEN it runs over three items, then over four
    three = run_machine(cloud, definition, {"items": [1, 2, 3], "pad": pad})
    four = run_machine(cloud, definition, {"items": [1, 2, 3, 4], "pad": pad}, execution="e2")
    # THEN three outputs fit, and four together are over 256 KiB: the execution fails
    assert three["status"] == "SUCCEEDED", three
    assert four["status"] == "FAILED"
    assert four["error"] == "States.DataLimitExceeded"
    assert "combined iteration output" in four["cause"]


def test_an_execution_input_over_the_limit_is_refused(cloud: LocalCloud) -> None:
    # GIVEN a state machine
    arn = create_machine(cloud, {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}, "stepgraph-g_in")
    # WHEN an execution is started with an input over 256 KiB
    with pytest.raises(ClientError) as refused:
        boto3.client("stepfunctions").start_execution(stateMachineArn=arn, input=json.dumps({"a": BIG, "b": BIG}))
    # THEN StartExecution refuses it, as AWS's API does
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert str(MAX_PAYLOAD_BYTES) in refused.value.response["Error"]["Message"]


# ------------------------------------------------------------------ what Catch cannot catch


def test_a_task_result_over_the_limit_is_not_caught_by_states_all(cloud: LocalCloud) -> None:
    # GIVEN a Lambda returning more than 256 KiB, called by a Task with Catch States.ALL
    cloud.register("stepgraph-user-big", lambda event, ctx: {"a": BIG, "b": BIG})
    definition = {
        "StartAt": "Call",
        "States": {"Call": task("stepgraph-user-big", Catch=CATCH_ALL, End=True), "Recovered": RECOVERED},
    }
    # WHEN it runs
    described = run_machine(cloud, definition, {})
    # THEN the execution fails instead of going on at Recovered
    assert described["status"] == "FAILED"
    assert described["error"] == "States.DataLimitExceeded"


def test_a_missing_parameter_path_is_states_runtime_and_neither_caught_nor_retried(cloud: LocalCloud) -> None:
    # GIVEN a Task whose Parameters read a field the input lacks, with Retry and Catch on States.ALL
    calls: list[Any] = []
    cloud.register("stepgraph-user-count", lambda event, ctx: calls.append(event))
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": task(
                "stepgraph-user-count",
                Parameters={"FunctionName": "stepgraph-user-count", "Payload.$": "$.missing"},
                Retry=[{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                Catch=CATCH_ALL,
                End=True,
            ),
            "Recovered": RECOVERED,
        },
    }
    # WHEN it runs
    described = run_machine(cloud, definition, {"present": 1})
    # THEN the execution fails with States.Runtime after one attempt, never reaching Recovered
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert calls == []
    events = boto3.client("stepfunctions").get_execution_history(executionArn=described["executionArn"])["events"]
    assert not [e for e in events if e["type"] == "PassStateEntered"]
    assert [e["type"] for e in events].count("TaskFailed") == 1  # one attempt, no retry


# ------------------------------------------------------------------ definitions


def test_a_definition_over_one_mebibyte_is_refused_at_create_and_update(cloud: LocalCloud) -> None:
    sfn = boto3.client("stepfunctions")

    def definition(size: int) -> str:
        shell = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Comment": "", "End": True}}})
        return shell.replace('"Comment": ""', '"Comment": "' + "c" * (size - len(shell)) + '"')

    # GIVEN definitions of exactly 1,048,576 bytes and one byte more
    at_limit, over = definition(MAX_DEFINITION_BYTES), definition(MAX_DEFINITION_BYTES + 1)
    assert (len(at_limit), len(over)) == (MAX_DEFINITION_BYTES, MAX_DEFINITION_BYTES + 1)
    # WHEN they are created
    arn = sfn.create_state_machine(name="stepgraph-g_big", definition=at_limit, roleArn=cloud.states_role_arn)
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="stepgraph-g_bigger", definition=over, roleArn=cloud.states_role_arn)
    # THEN the one over the limit is refused as AWS refuses it, and no state machine is left
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "1048576" in refused.value.response["Error"]["Message"]
    names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
    assert names == ["stepgraph-g_big"]
    # AND UpdateStateMachine refuses it too
    with pytest.raises(ClientError) as refused:
        sfn.update_state_machine(stateMachineArn=arn["stateMachineArn"], definition=over)
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_an_update_adding_set_members_past_the_item_size_limit_is_refused_and_changes_nothing(
    cloud: LocalCloud,
) -> None:
    # GIVEN an item with a string set of 19,000 run ids (about 340 KB)
    table = boto3.resource("dynamodb").Table(cloud.table_name)
    key = {"pk": "CONN#c1", "sk": "CONN"}
    table.put_item(Item={**key, "runs": {f"r_{n:016x}" for n in range(19_000)}})

    def add(first: int, count: int) -> None:
        table.update_item(
            Key=key,
            UpdateExpression="ADD runs :r",
            ExpressionAttributeValues={":r": {f"r_{n:016x}" for n in range(first, first + count)}},
        )

    # WHEN members are added that stay under the limit, then ones that would pass it
    add(19_000, 1_000)
    with pytest.raises(ClientError) as refused:
        add(20_000, 5_000)
    # THEN the second is refused as AWS refuses it, and the item keeps the 20,000 members it had
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item size to update has exceeded the maximum allowed size" in refused.value.response["Error"]["Message"]
    assert len(table.get_item(Key=key)["Item"]["runs"]) == 20_000


def test_the_state_machine_quota_is_awss() -> None:
    assert strict.MAX_STATE_MACHINES == 10_000  # the default quota of an account and Region


def test_create_state_machine_refuses_one_past_the_quota(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a quota of 2 state machines (AWS's 10,000 is the same rule) and two created
    monkeypatch.setattr(strict, "MAX_STATE_MACHINES", 2)
    sfn = boto3.client("stepfunctions")
    pass_only = json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    first = sfn.create_state_machine(name="stepgraph-g_1", definition=pass_only, roleArn=cloud.states_role_arn)
    sfn.create_state_machine(name="stepgraph-g_2", definition=pass_only, roleArn=cloud.states_role_arn)
    # WHEN a third is created
    with pytest.raises(ClientError) as refused:
        sfn.create_state_machine(name="stepgraph-g_3", definition=pass_only, roleArn=cloud.states_role_arn)
    # THEN it is refused with AWS's error, and only the two exist
    assert refused.value.response["Error"]["Code"] == "StateMachineLimitExceeded"
    assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["stepgraph-g_1", "stepgraph-g_2"]
    # AND once one is deleted, a new one can be created
    sfn.delete_state_machine(stateMachineArn=first["stateMachineArn"])
    sfn.create_state_machine(name="stepgraph-g_3", definition=pass_only, roleArn=cloud.states_role_arn)


def test_a_fail_state_with_a_reserved_error_name_is_refused(cloud: LocalCloud) -> None:
    # GIVEN a definition whose Fail state (inside a Parallel) uses the reserved prefix States.
    branch = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "States.Timeout", "Cause": "x"}}}
    definition = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": [branch], "End": True}}}
    # WHEN it is created
    with pytest.raises(ClientError) as refused:
        create_machine(cloud, definition, "stepgraph-g_reserved")
    # THEN CreateStateMachine refuses it with InvalidDefinition naming the state
    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "/States/P/Branches/0/States/Boom/Error" in refused.value.response["Error"]["Message"]


def test_a_fail_state_raising_a_reserved_name_at_run_time_fails_the_execution_uncaught(cloud: LocalCloud) -> None:
    # GIVEN a Parallel whose branch fails with an ErrorPath that resolves to States.Timeout, caught by States.ALL
    branch = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "ErrorPath": "$.error"}}}
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [branch], "Catch": CATCH_ALL, "End": True},
            "Recovered": RECOVERED,
        },
    }
    # WHEN it runs
    described = run_machine(cloud, definition, {"error": "States.Timeout"})
    # THEN the run does not pass for a timeout: it fails with States.Runtime, uncaught
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"


def test_validate_state_machine_definition_reports_what_create_would_refuse(cloud: LocalCloud) -> None:
    sfn = boto3.client("stepfunctions")
    good = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}
    reserved = {"StartAt": "A", "States": {"A": {"Type": "Fail", "Error": "States.Nope"}}}
    dangling = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
    # WHEN definitions are validated
    results = {
        name: sfn.validate_state_machine_definition(definition=json.dumps(d))
        for name, d in (("good", good), ("reserved", reserved), ("dangling", dangling))
    }
    # THEN the good one is OK and the others FAIL with a diagnostic each
    assert results["good"]["result"] == "OK"
    assert results["good"]["diagnostics"] == []
    assert results["reserved"]["result"] == "FAIL"
    assert results["reserved"]["diagnostics"][0]["location"] == "/States/A/Error"
    assert results["dangling"]["result"] == "FAIL"
    assert results["dangling"]["diagnostics"][0]["severity"] == "ERROR"


# ------------------------------------------------------------------ history and concurrency


def test_the_history_cap_is_awss() -> None:
    assert MAX_HISTORY_EVENTS == 25_000  # a STANDARD execution's quota; bench/history.py runs one into it


def test_an_execution_reaching_the_history_cap_fails(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a cap of 2,000 events (AWS's 25,000 is the same rule, run at scale by `make bench`) and a loop of a
    # Pass and a Choice (4 events a round) bounded far beyond it
    monkeypatch.setattr(strict, "MAX_HISTORY_EVENTS", 2_000)
    # WHEN it runs
    arn = start_machine(cloud, LOOP, {"i": 0}, name="stepgraph-g_loop")
    described = wait_execution(arn, timeout=300)
    # THEN it fails when its history is full, with the ExecutionFailed event the last one the cap allows
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert "maximum of 2,000 events" in described["cause"]
    events = boto3.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    assert len(events) == 2_000
    assert events[-1]["type"] == "ExecutionFailed"


@pytest.mark.parametrize(("mode", "status"), [("INLINE", "FAILED"), ("DISTRIBUTED", "SUCCEEDED")])
def test_a_distributed_maps_children_have_histories_of_their_own(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch, mode: str, status: str
) -> None:
    # GIVEN a history cap of 100 events (instead of 25,000) and a Map of 40 items of 2 Pass states each
    monkeypatch.setattr(strict, "MAX_HISTORY_EVENTS", 100)
    states = {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}}
    processor = {"ProcessorConfig": {"Mode": mode, "ExecutionType": "STANDARD"}, "StartAt": "A", "States": states}
    definition = {
        "StartAt": "Each",
        "States": {"Each": {"Type": "Map", "MaxConcurrency": 10, "ItemProcessor": processor, "End": True}},
    }
    # WHEN it runs (its iterations write 240 events)
    described = run_machine(cloud, definition, list(range(40)), name=f"stepgraph-g_{mode.lower()}")
    # THEN inline, they are the execution's own events and fail it; distributed, they are the child
    # executions' (each within the cap) and the execution succeeds, as in AWS
    assert described["status"] == status, described
    events = boto3.client("stepfunctions").get_execution_history(executionArn=described["executionArn"])["events"]
    if mode == "DISTRIBUTED":
        assert json.loads(described["output"]) == list(range(40))
    else:
        assert (described["error"], "100 events" in described["cause"]) == ("States.Runtime", True)
        assert (len(events), events[-1]["type"]) == (100, "ExecutionFailed")


@pytest.mark.parametrize("max_concurrency", [0, 100])
def test_an_inline_map_runs_at_most_40_iterations_at_once(cloud: LocalCloud, max_concurrency: int) -> None:
    # GIVEN a Lambda whose calls wait, once 40 overlap, a second more for a 41st (up to 20 s in all), and a Map
    # over 60 items calling it
    overlap = threading.Condition()
    running = [0]
    peak = [0]
    full_since: list[float] = []

    def held() -> bool:
        return running[0] > MAX_INLINE_MAP_CONCURRENCY or bool(full_since and time.monotonic() - full_since[0] > 1)

    def slow(event: Any, ctx: Any) -> Any:
        deadline = time.monotonic() + 20
        with overlap:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] >= MAX_INLINE_MAP_CONCURRENCY and not full_since:
                full_since.append(time.monotonic())
            overlap.notify_all()
            while not held() and time.monotonic() < deadline:
                overlap.wait(0.05)
            running[0] -= 1
        return event

    cloud.register("stepgraph-user-slow", slow, timeout=30)
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {"StartAt": "Call", "States": {"Call": task("stepgraph-user-slow", End=True)}},
                "End": True,
            }
        },
    }
    # WHEN it runs with MaxConcurrency 0 (no limit) or 100
    described = wait_execution(start_machine(cloud, definition, list(range(60))), timeout=120)
    # THEN it succeeds with every result, 40 calls at once and never more
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == list(range(60))
    assert peak[0] == MAX_INLINE_MAP_CONCURRENCY


# ------------------------------------------------------------------ the API asks Step Functions' validator first


SPEC = {"name": "checked", "nodes": [{"id": "a", "tool": "util.echo", "params": {"value": 1}}], "edges": []}


@pytest.mark.parametrize(
    ("defect", "status", "code"),
    [
        ("dangling", 422, "invalid_spec"),
        ("reserved", 422, "invalid_spec"),
        ("oversized", 422, "limit_exceeded"),
    ],
)
def test_a_definition_step_functions_would_refuse_is_a_422_and_creates_nothing(
    cloud: LocalCloud, api: httpx.Client, monkeypatch: pytest.MonkeyPatch, defect: str, status: int, code: str
) -> None:
    # GIVEN a compiler that (by a defect) emits a definition Step Functions refuses
    from functions.api import graphs_service

    real = graphs_service.compile_definition

    def defective(spec: Any, executor_arn: str) -> dict[str, Any]:
        definition = real(spec, executor_arn)
        first = definition["StartAt"]
        if defect == "dangling":
            definition["States"][first]["Next"] = "Nowhere"
            definition["States"][first].pop("End", None)
        elif defect == "reserved":
            definition["States"]["Boom"] = {"Type": "Fail", "Error": "States.Boom"}
        else:
            definition["Comment"] = "c" * MAX_DEFINITION_BYTES
        return definition

    monkeypatch.setattr(graphs_service, "compile_definition", defective)
    # WHEN the graph is created through the API
    response = api.post("/graphs", json=SPEC)
    # THEN it answers 422 with Step Functions' diagnostics, and no state machine was created
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    assert body["details"] and all(d["message"] for d in body["details"])
    assert boto3.client("stepfunctions").list_state_machines()["stateMachines"] == []
    assert api.get("/graphs").json()["graphs"] == []
