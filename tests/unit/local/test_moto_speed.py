"""The local cloud's cheaper ``UpdateItem`` (local/moto_speed.py) answers, refuses and streams as moto's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_speed

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


def _errors(table: Any) -> list[str]:
    found = []
    for expression in REFUSED:
        try:
            table.update_item(
                Key={"pk": "RUN#r", "sk": "n1"},
                UpdateExpression=expression,
                ExpressionAttributeValues={":v": 1},
            )
        except ClientError as exc:
            found.append(f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}")
        else:
            found.append("accepted")
    for names in ({"#s": "status"}, {"#s": "status", "#unused": "x"}):  # a name the condition does not use
        try:
            table.put_item(
                Item={"pk": "RUN#r", "sk": "n2"},
                ConditionExpression="attribute_not_exists(#s)",
                ExpressionAttributeNames=names,
            )
        except ClientError as exc:
            found.append(f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}")
        else:
            found.append("put")
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
