"""The table handle and key helpers shared by every store module."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

_lock = threading.Lock()


class TableHandle:
    """Lazily creates the boto3 Table; inject ``table`` in tests or to share one."""

    def __init__(self, table: Table | None = None) -> None:
        self._table = table

    @property
    def table(self) -> Table:
        if self._table is None:
            with _lock:
                if self._table is None:
                    settings = get_settings()
                    self._table = boto3.resource("dynamodb", region_name=settings.region).Table(settings.table)
        return self._table


def now_iso() -> str:
    """UTC now as ISO 8601 with microseconds and ``Z``; sorts as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_pk(run_id: str) -> str:
    return f"RUN#{run_id}"


def graph_pk(graph_id: str) -> str:
    return f"GRAPH#{graph_id}"


def node_sk(node: str, iteration: int) -> str:
    return f"NODE#{node}#{iteration:04d}"


def version_sk(version: int) -> str:
    return f"VERSION#{version:06d}"


def event_sk(seq: int) -> str:
    """An event's sort key: its run-wide number, zero-padded so keys sort as numbers."""
    return f"EVENT#{seq:010d}"


def blob_sk(node: str, iteration: int, field: str, chunk: int) -> str:
    return f"BLOB#{node}#{iteration:04d}#{field}#{chunk:04d}"


def clean(item: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values: DynamoDB stores absent rather than null attributes for optional fields."""
    return {k: v for k, v in item.items() if v is not None}


def event_stamp(source_sk: str, type_: str, at: str, message: str, **extra: Any) -> dict[str, Any]:
    """The event a write announces, stamped into the written item as ``last_event_json``.

    The stream function turns each new stamp into an event item with the next ``seq`` of the run
    (functions/store/events.py). ``eid`` names the transition (item, type, attempt): a write that
    repeats a transition carries the same ``eid``, and the stream function numbers it once.
    """
    attempt = extra.get("attempt")
    eid = f"{source_sk}#{type_}#{attempt if attempt is not None else '-'}"
    return clean({"eid": eid, "type": type_, "at": at, "message": message, **extra})


def newest_first(partition: str, limit: int, start: dict[str, Any] | None) -> dict[str, Any]:
    """Query arguments for one page of a ``gsi1`` listing, newest first, resuming after ``start``."""
    kwargs: dict[str, Any] = {
        "IndexName": "gsi1",
        "KeyConditionExpression": Key("gsi1pk").eq(partition),
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start:
        kwargs["ExclusiveStartKey"] = start
    return kwargs


def condition_failed(exc: ClientError) -> bool:
    """True when a conditional write was refused because its condition did not hold."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def conditional_update(table: Table, update: dict[str, Any]) -> bool:
    """A conditional ``update_item``; False when its condition failed (other errors propagate)."""
    try:
        table.update_item(**update)
    except ClientError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


def put_once(table: Table, item: dict[str, Any]) -> None:
    """Put an item (an event) unless its key already exists: event keys are unique, so a repeat changes nothing."""
    try:
        table.put_item(Item=item, ConditionExpression="attribute_not_exists(sk)")
    except ClientError as exc:
        if not condition_failed(exc):
            raise
