"""Schedules in DynamoDB: one item per schedule in its graph's partition, and a count on the graph's head.

A schedule is ``pk=GRAPH#<graph_id>, sk=SCHEDULE#<schedule_id>``; its run input lives here (EventBridge
Scheduler's target input only names the schedule). The graph head's ``schedule_count`` is claimed with a
conditional update before a schedule is made (the graph must exist, not be deleted, and have a slot left), so
concurrent creates cannot pass the cap, and is given back when one is deleted.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.errors import LimitError, NotFoundError, StoreError
from functions.store.table import TableHandle, condition_failed, graph_pk, old_item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SCHEDULE_PREFIX = "SCHEDULE#"


def new_schedule_id() -> str:
    return f"s_{secrets.token_hex(6)}"


def schedule_sk(schedule_id: str) -> str:
    return f"{SCHEDULE_PREFIX}{schedule_id}"


@dataclass
class Schedule:
    """A schedule as the API reports it (its input decoded)."""

    schedule_id: str
    graph_id: str
    expression: str
    timezone: str
    created_at: str
    aws_name: str
    input: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Schedule:
        raw = item.get("input_json")
        return cls(
            schedule_id=str(item["schedule_id"]),
            graph_id=str(item["graph_id"]),
            expression=str(item["expression"]),
            timezone=str(item.get("timezone", "UTC")),
            created_at=str(item["created_at"]),
            aws_name=str(item.get("aws_name", "")),
            input=json.loads(raw) if isinstance(raw, str) else {},
        )


class ScheduleStore:
    """Reads and writes schedule items and the per-graph count; inject ``table`` in tests."""

    def __init__(self, table: Table | None = None) -> None:
        self._handle = TableHandle(table)

    @property
    def table(self) -> Table:
        return self._handle.table

    def claim_slot(self, graph_id: str, cap: int) -> None:
        """Count one more schedule on the graph's head: 404 for a graph that does not exist (or is deleted), 422
        when it already has ``cap``."""
        try:
            self.table.update_item(
                Key={"pk": graph_pk(graph_id), "sk": "GRAPH"},
                UpdateExpression="ADD schedule_count :one",
                ConditionExpression=(
                    "attribute_exists(pk) AND deleted = :no "
                    "AND (attribute_not_exists(schedule_count) OR schedule_count < :cap)"
                ),
                ExpressionAttributeValues={":one": 1, ":no": False, ":cap": cap},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise StoreError(f"could not count a schedule of graph {graph_id}") from exc
            head = old_item(exc)
            if not head or head.get("deleted"):
                raise NotFoundError(f"no graph {graph_id!r}") from exc
            raise LimitError(
                f"graph {graph_id} already has {cap} schedules, the most a graph may have; delete one first",
                [{"loc": "schedules", "message": f"at most {cap} schedules per graph"}],
            ) from exc

    def release_slot(self, graph_id: str) -> None:
        """Give back a slot claimed by ``claim_slot`` (never below zero)."""
        try:
            self.table.update_item(
                Key={"pk": graph_pk(graph_id), "sk": "GRAPH"},
                UpdateExpression="ADD schedule_count :minus",
                ConditionExpression="schedule_count > :zero",
                ExpressionAttributeValues={":minus": -1, ":zero": 0},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise StoreError(f"could not uncount a schedule of graph {graph_id}") from exc

    def put(self, schedule: Schedule) -> None:
        self.table.put_item(
            Item={
                "pk": graph_pk(schedule.graph_id),
                "sk": schedule_sk(schedule.schedule_id),
                "schedule_id": schedule.schedule_id,
                "graph_id": schedule.graph_id,
                "expression": schedule.expression,
                "timezone": schedule.timezone,
                "created_at": schedule.created_at,
                "aws_name": schedule.aws_name,
                "input_json": json.dumps(schedule.input),
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, graph_id: str, schedule_id: str) -> Schedule:
        item = self.table.get_item(
            Key={"pk": graph_pk(graph_id), "sk": schedule_sk(schedule_id)}, ConsistentRead=True
        ).get("Item")
        if not item:
            raise NotFoundError(f"graph {graph_id!r} has no schedule {schedule_id!r}")
        return Schedule.from_item(item)

    def list(self, graph_id: str) -> list[Schedule]:
        """The graph's schedules, oldest first (a graph has at most the cap, so one page or a few)."""
        found: list[Schedule] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(graph_pk(graph_id)) & Key("sk").begins_with(SCHEDULE_PREFIX),
            "ConsistentRead": True,
        }
        while True:
            page = self.table.query(**query)
            found += [Schedule.from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda s: (s.created_at, s.schedule_id))

    def delete(self, graph_id: str, schedule_id: str) -> bool:
        """Remove the item; False when it was already gone (a concurrent delete won)."""
        try:
            self.table.delete_item(
                Key={"pk": graph_pk(graph_id), "sk": schedule_sk(schedule_id)},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise StoreError(f"could not delete schedule {schedule_id}") from exc
        return True
