"""The local cloud's cheaper moto (local/moto_speed.py): `UpdateItem` answers, refuses and streams as moto's own, and
executions of a kept definition parse run as with moto's own parse."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_speed
from local.lambdas import LambdaDispatcher

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

START = (
    "SET #status = :running, attempts = :a, started_at = if_not_exists(started_at, :at), "
    "starts = if_not_exists(starts, :zero) + :one, tags = list_append(if_not_exists(tags, :empty), :tag)"
)
CONDITION = "attribute_not_exists(pk) OR (NOT #status IN (:done) AND attempts < :a)"
REFUSED = [
    "SET a = :v SET b = :v",  # two SET clauses
    "SET a = :v, a = :v",  # the same path twice
    "SET a = :v, a.b = :v",  # overlapping paths
    "ADD n :v ADD m :v",  # two ADD clauses
    "SET pk = :v",  # a key attribute
    "SET a = :v, b = :missing",  # an undefined value
    "SET a = b + :v",  # arithmetic on an attribute that is not there
]


def _table() -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return boto3.resource("dynamodb", region_name="us-east-1").Table("t")


def _start(table: Any, sk: str, attempt: int, at: str) -> dict[str, Any]:
    response = table.update_item(
        Key={"pk": "RUN#r", "sk": sk},
        UpdateExpression=START,
        ConditionExpression=CONDITION,
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":running": "RUNNING",
            ":a": attempt,
            ":at": at,
            ":zero": 0,
            ":one": 1,
            ":done": "SUCCEEDED",
            ":empty": [],
            ":tag": [f"attempt {attempt}"],
        },
        ReturnValues="ALL_NEW",
    )
    return dict(response["Attributes"])


def _outcome(call: Callable[..., Any], done: str, **kwargs: Any) -> str:
    """``done`` when the call is accepted, else its error code and message."""
    try:
        call(**kwargs)
    except ClientError as exc:
        return f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}"
    return done


def _errors(table: Any) -> list[str]:
    found = [
        _outcome(
            table.update_item,
            "accepted",
            Key={"pk": "RUN#r", "sk": "n1"},
            UpdateExpression=expression,
            ExpressionAttributeValues={":v": 1},
        )
        for expression in REFUSED
    ]
    for names in ({"#s": "status"}, {"#s": "status", "#unused": "x"}):  # a name the condition does not use
        found.append(
            _outcome(
                table.put_item,
                "put",
                Item={"pk": "RUN#r", "sk": "n2"},
                ConditionExpression="attribute_not_exists(#s)",
                ExpressionAttributeNames=names,
            )
        )
    return found


def _session(run: Callable[[Any], Any], *, fast: bool) -> Any:
    undo = moto_speed.install() if fast else None
    try:
        with mock_aws():
            return run(_table())
    finally:
        if undo is not None:
            undo()


@pytest.fixture
def both() -> Iterator[Callable[[Callable[[Any], Any]], tuple[Any, Any]]]:
    yield lambda run: (_session(run, fast=False), _session(run, fast=True))


def test_repeated_updates_give_the_same_items_as_moto_does(both: Any) -> None:
    # GIVEN one update expression used again and again with different values (new items and existing ones)
    def run(table: Any) -> list[dict[str, Any]]:
        items = [_start(table, f"n{i}", 1, f"t{i}") for i in range(3)]
        items += [_start(table, "n0", attempt, f"later{attempt}") for attempt in (2, 3)]
        try:
            _start(table, "n0", 3, "stale")
        except ClientError as exc:
            items.append({"refused": exc.response["Error"]["Code"]})
        return items

    # WHEN moto runs them with and without the local cloud's cheaper UpdateItem
    plain, fast = both(run)
    # THEN every answer is the same: each update's own values, counters and appended lists; the stale one refused
    assert fast == plain
    assert fast[4]["starts"] == 3 and fast[4]["tags"] == ["attempt 1", "attempt 2", "attempt 3"]
    assert fast[4]["started_at"] == "t0" and fast[1]["started_at"] == "t1"
    assert fast[-1] == {"refused": "ConditionalCheckFailedException"}


def test_invalid_update_expressions_are_refused_with_moto_s_errors(both: Any) -> None:
    # GIVEN update expressions DynamoDB refuses (each tried twice: the second time its parse is kept)
    # WHEN moto runs them with and without the local cloud's cheaper UpdateItem
    plain, fast = both(lambda table: _errors(table) + _errors(table))
    # THEN each is refused, with the same error, both times (a conditional put with an unused name too)
    assert fast == plain
    assert "accepted" not in fast
    assert fast.count("put") == 2 and len(fast) == 2 * (len(REFUSED) + 2)


def test_an_update_that_creates_its_item_answers_as_moto_s_whether_it_reads_the_key_or_not(both: Any) -> None:
    # GIVEN updates that create their item: one naming no key attribute, one reading the sort key, one by name
    def run(table: Any) -> list[Any]:
        found: list[Any] = []
        for i, (expression, names) in enumerate(
            [("SET a = :v, n = if_not_exists(n, :v) + :v", {}), ("SET a = sk", {}), ("SET a = #k", {"#k": "sk"})]
        ):
            try:
                extra: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
                if ":v" in expression:
                    extra["ExpressionAttributeValues"] = {":v": 1}
                response = table.update_item(
                    Key={"pk": "RUN#r", "sk": f"new{i}"}, UpdateExpression=expression, ReturnValues="ALL_NEW", **extra
                )
                found.append(dict(response["Attributes"]))
            except ClientError as exc:
                found.append(f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}")
        return found

    # WHEN moto runs them with and without the local cloud's cheaper UpdateItem (one validation for the first)
    plain, fast = both(run)
    # THEN each answers as moto's own does
    assert fast == plain
    assert fast[0] == {"pk": "RUN#r", "sk": "new0", "a": 1, "n": 2}


def test_an_expression_that_passed_is_checked_again_with_other_names(both: Any) -> None:
    # GIVEN one update expression whose two paths are distinct under some names and the same path under others
    def run(table: Any) -> list[str]:
        return [
            _outcome(
                table.update_item,
                "accepted",
                Key={"pk": "RUN#r", "sk": "n1"},
                UpdateExpression="SET #a = :v, #b = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":v": 1},
            )
            for names in ({"#a": "x", "#b": "y"}, {"#a": "x", "#b": "x"}, {"#a": "x", "#b": "y"})
        ]

    # WHEN moto runs it with and without the local cloud's cheaper UpdateItem, the distinct names first
    plain, fast = both(run)
    # THEN the same path twice is refused even after the expression passed with other names, as moto refuses it
    assert fast == plain
    assert fast[0] == fast[2] == "accepted" and fast[1] != "accepted"


REQUEST_ID = re.compile(r"requestId[^,]*,")
FLAKY = "arn:aws:lambda:us-east-1:123456789012:function:flaky"
DEFINITION = {
    "StartAt": "kept",
    "States": {
        "kept": {"Type": "Pass", "Result": {"kept": 1, "list": [1]}, "ResultPath": "$.r", "Next": "grow"},
        "grow": {"Type": "Pass", "Result": "added", "ResultPath": "$.r.added", "Next": "flaky"},
        "flaky": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": FLAKY, "Payload": {"retry.$": "$$.State.RetryCount"}},
            "ResultSelector": {"attempt.$": "$.Payload"},
            "ResultPath": "$.task",
            "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}],
            "Next": "branches",
        },
        "branches": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "a", "States": {"a": {"Type": "Pass", "Result": {"b": "a"}, "End": True}}},
                {
                    "StartAt": "each",
                    "States": {
                        "each": {
                            "Type": "Map",
                            "ItemsPath": "$.r.list",
                            "ItemProcessor": {
                                "StartAt": "item",
                                "States": {"item": {"Type": "Pass", "Parameters": {"i.$": "$"}, "End": True}},
                            },
                            "End": True,
                        }
                    },
                },
            ],
            "ResultPath": "$.branches",
            "Next": "which",
        },
        "which": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.task.attempt", "NumericEquals": 1, "Next": "done"}],
            "Default": "wrong",
        },
        "done": {"Type": "Succeed"},
        "wrong": {"Type": "Fail", "Error": "Wrong"},
    },
}


class Boom(Exception):
    """The error the flaky function raises on its first attempt (Lambda's errorType is the class name)."""


def _flaky(event: dict[str, Any], _context: Any) -> int:
    if event["retry"] < 1:
        raise Boom("first attempt")
    return int(event["retry"])


def _executions(*, fast: bool, runs: int) -> list[tuple[str, Any, list[tuple[str, str]]]]:
    """Run DEFINITION ``runs`` times at once; each execution's status, output and history (without times)."""
    undo = moto_speed.install() if fast else None
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
            dispatcher = LambdaDispatcher()
            dispatcher.register("flaky", _flaky, timeout=10)
            dispatcher.install()
            try:
                sfn = boto3.client("stepfunctions", region_name="us-east-1")
                arn = sfn.create_state_machine(
                    name="kept", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/r"
                )["stateMachineArn"]
                started = [
                    sfn.start_execution(stateMachineArn=arn, name=f"run-{i}", input="{}")["executionArn"]
                    for i in range(runs)
                ]
                found: list[tuple[str, Any, list[tuple[str, str]]]] = []
                for execution in started:
                    deadline = time.monotonic() + 30
                    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
                        assert time.monotonic() < deadline
                        time.sleep(0.02)
                    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
                    steps = sorted(  # sorted: the Parallel state's branches race
                        (
                            str(event["type"]),
                            REQUEST_ID.sub("", json.dumps({k: v for k, v in event.items() if k.endswith("Details")})),
                        )
                        for event in history
                    )
                    found.append((str(described["status"]), json.loads(described.get("output") or "null"), steps))
                return found
            finally:
                dispatcher.uninstall()
    finally:
        if undo is not None:
            undo()


def test_executions_of_a_kept_definition_run_as_moto_runs_each_alone() -> None:
    # GIVEN a definition with a Pass result a later state extends, a Task retried once, a Parallel state and a Map
    # WHEN it runs three times at once, with the local cloud's kept definition parse and with moto's own parse
    plain = _executions(fast=False, runs=3)
    fast = _executions(fast=True, runs=3)
    # THEN each execution has the output and history moto gives when it parses the definition for each
    assert fast == plain
    assert [status for status, _, _ in fast] == ["SUCCEEDED"] * 3
    assert all(output["r"] == {"kept": 1, "list": [1], "added": "added"} for _, output, _ in fast)
    assert all([kind for kind, _ in steps].count("TaskFailed") == 1 for _, _, steps in fast)


EVERY_TYPE = {
    "pk": {"S": "RUN#r"},
    "sk": {"S": "ITEM#0001"},
    "s": {"S": 'text with \u00e9 and "quotes"'},
    "empty": {"S": ""},
    "n": {"N": "12345678901234567890.5"},
    "negative": {"N": "-3"},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "nothing": {"NULL": True},
    "b": {"B": b"\x00\x01binary"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"x", b"y"]},
    "m": {"M": {"inner": {"S": "v"}, "deep": {"L": [{"N": "1"}, {"M": {"k": {"BOOL": False}}}]}}},
    "m_with_binary": {"M": {"blob": {"B": b"\xff"}}},
    "l": {"L": [{"S": "x"}, {"NULL": True}, {"L": []}, {"M": {}}]},
}


def _every_answer(_: Any) -> list[Any]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    key = {"pk": EVERY_TYPE["pk"], "sk": EVERY_TYPE["sk"]}
    client.put_item(TableName="t", Item=EVERY_TYPE)
    got = client.get_item(TableName="t", Key=key, ConsistentRead=True)["Item"]
    queried = client.query(
        TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": EVERY_TYPE["pk"]}
    )["Items"]
    updated = client.update_item(
        TableName="t",
        Key=key,
        UpdateExpression="SET s = :s",
        ExpressionAttributeValues={":s": {"S": "changed"}},
        ReturnValues="ALL_OLD",
    )["Attributes"]
    return [got, queried, updated]


def test_items_of_every_attribute_type_come_back_as_moto_returns_them(both: Any) -> None:
    # GIVEN an item with every attribute type, nested maps and lists, and binary values inside a map
    # WHEN it is put, then read by GetItem, Query and an UpdateItem's ALL_OLD, with and without the cheaper serializer
    plain, fast = both(_every_answer)
    # THEN every answer is the same, and each is the item as it was written
    assert fast == plain
    got, queried, updated = fast
    assert got == EVERY_TYPE and queried == [EVERY_TYPE] and updated == EVERY_TYPE


def test_only_values_without_binary_data_are_copied_as_they_are() -> None:
    # GIVEN AttributeValues in wire form, with and without binary data at some depth
    plain = {"M": {"a": {"L": [{"S": "x"}, {"NS": ["1"]}]}}}
    # WHEN the serializer's shortcut looks at them
    copied = moto_speed.wire_attribute_value(plain)
    # THEN plain ones are copied whole, and binary ones (which moto base64-encodes) are left to moto
    assert copied == plain and copied is not plain and copied["M"] is not plain["M"]
    assert moto_speed.wire_attribute_value({"M": {"a": {"L": [{"B": "eA=="}]}}}) is None
    assert moto_speed.wire_attribute_value({"BS": ["eA=="]}) is None
    assert moto_speed.wire_attribute_value({"S": "a", "N": "1"}) is None


def test_state_data_is_copied_as_deepcopy_copies_it() -> None:
    # GIVEN a state's data: nested maps and lists, a list shared by two keys, and a value pickle refuses
    shared = [1, {"deep": ["x"]}]
    data = {"items": [{"i": i, "v": {"s": str(i)}} for i in range(3)], "a": shared, "b": shared, "n": None}
    unpicklable = {"call": lambda: 1, "list": [1, 2]}
    # WHEN the interpreter's copy makes copies of them
    copied = moto_speed.copy_data(data)
    refused = moto_speed.copy_data(unpicklable)
    # THEN each is equal to the original and shares no container with it, as copy.deepcopy's
    assert copied == data
    assert copied["items"][0]["v"] is not data["items"][0]["v"] and copied["a"][1] is not shared[1]
    # AND what was shared inside stays shared
    assert copied["a"] is copied["b"]
    # AND a value pickle refuses is deep-copied as before
    assert refused["call"] is unpicklable["call"] and refused["list"] == [1, 2]
    assert refused["list"] is not unpicklable["list"]
