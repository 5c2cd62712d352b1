"""The table handle and key helpers shared by every store module."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import boto3
from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from functions.errors import BadRequestError
from functions.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb.service_resource import Table

_lock = threading.Lock()


class TableHandle:
    """Lazily creates the boto3 Table; inject ``table`` in tests or to share one.

    Stores write through ``table``, which stamps every item of a run's partition with its expiry (see
    :class:`ExpiringTable`): runs, node results, events and blobs all go after ``run_retention_days``.
    """

    def __init__(self, table: Table | None = None) -> None:
        self._table = table
        self._expiring: Table | None = None

    @property
    def table(self) -> Table:
        if self._expiring is None:
            with _lock:
                if self._table is None:
                    settings = get_settings()
                    self._table = boto3.resource("dynamodb", region_name=settings.region).Table(settings.table)
                self._expiring = ExpiringTable.wrap(self._table)
        return self._expiring


EXPIRES_AT = "expires_at"
"""The table's TTL attribute (epoch seconds); DynamoDB deletes an item some time after it."""
RUN_PREFIX = "RUN#"
_SET_CLAUSE = re.compile(r"(?:^|(?<=\s))SET\s+", re.IGNORECASE)


def expires_at(now: float | None = None) -> int:
    """When a run-scoped item written now expires: ``run_retention_days`` later, in epoch seconds."""
    return int((time.time() if now is None else now) + get_settings().run_retention_days * 86400)


def with_expiry(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` stamped with its expiry when it belongs to a run's partition (``pk`` ``RUN#...``)."""
    if not str(item.get("pk", "")).startswith(RUN_PREFIX) or EXPIRES_AT in item:
        return item
    return {**item, EXPIRES_AT: expires_at()}


def update_with_expiry(update: dict[str, Any]) -> dict[str, Any]:
    """``update_item`` arguments that also set the expiry of a run-scoped item: an item expires
    ``run_retention_days`` after it was last written, so nothing disappears under a run still writing it."""
    expression = str(update.get("UpdateExpression", ""))
    if not str(update.get("Key", {}).get("pk", "")).startswith(RUN_PREFIX) or EXPIRES_AT in expression:
        return update
    values = {**update.get("ExpressionAttributeValues", {}), ":stepgraph_expires_at": expires_at()}
    expression = add_set(expression, f"{EXPIRES_AT} = :stepgraph_expires_at")
    return {**update, "UpdateExpression": expression, "ExpressionAttributeValues": values}


def add_set(expression: str, clause: str) -> str:
    """An update expression with ``clause`` added to its SET part, wherever that stands beside REMOVE/ADD
    parts (an expression has one SET clause at most)."""
    found = _SET_CLAUSE.search(expression)
    if found:
        return f"{expression[: found.end()]}{clause}, {expression[found.end() :]}"
    return f"SET {clause} {expression}".strip()


class ExpiringTable:
    """A boto3 Table whose writes to a run's partition carry ``expires_at`` (the table's TTL attribute).

    Every store writes through it (``TableHandle.table``), so a new kind of run-scoped item expires with
    the run without its writer doing anything. Writes through the low-level client (``table.meta.client``)
    are not stamped: use :func:`with_expiry` / :func:`update_with_expiry` there.
    """

    def __init__(self, table: Table) -> None:
        self._table = table

    @classmethod
    def wrap(cls, table: Table) -> Table:
        return table if isinstance(table, ExpiringTable) else cast("Table", cls(table))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def put_item(self, **kwargs: Any) -> Any:
        return self._table.put_item(**{**kwargs, "Item": with_expiry(kwargs["Item"])})

    def update_item(self, **kwargs: Any) -> Any:
        return self._table.update_item(**update_with_expiry(kwargs))

    def batch_writer(self, *args: Any, **kwargs: Any) -> _ExpiringBatch:
        return _ExpiringBatch(self._table.batch_writer(*args, **kwargs))


class _ExpiringBatch:
    """``Table.batch_writer()`` whose puts carry the expiry."""

    def __init__(self, batch: Any) -> None:
        self._batch = batch

    def __enter__(self) -> _ExpiringBatch:
        self._batch.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._batch.__exit__(*exc)

    def put_item(self, Item: dict[str, Any]) -> None:
        self._batch.put_item(Item=with_expiry(Item))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)


STORE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
"""How every stored timestamp is written: UTC ISO 8601 with microseconds and ``Z`` (sorts as text)."""


def iso(moment: datetime) -> str:
    """A datetime as stored (naive ones are taken as UTC)."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC).strftime(STORE_TIME)


def now_iso() -> str:
    """UTC now, as stored."""
    return iso(datetime.now(UTC))


def parse_iso(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp (stored, or Step Functions' with an offset) as an aware UTC datetime; None when
    missing or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


def store_iso(value: str | None) -> str | None:
    """Any ISO 8601 timestamp in the stored format, or None if unreadable."""
    moment = parse_iso(value)
    return None if moment is None else iso(moment)


def ms_between(start: str | None, end: str | None) -> int | None:
    """Milliseconds from ``start`` to ``end`` (never negative); None when either is missing or unreadable."""
    first, last = parse_iso(start), parse_iso(end)
    if first is None or last is None:
        return None
    return max(0, int((last - first).total_seconds() * 1000))


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


# --- cursors: opaque, base64url JSON of a LastEvaluatedKey, checked before DynamoDB sees them ----------


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    """An opaque cursor for ``key`` (a DynamoDB LastEvaluatedKey of string attributes), or None."""
    if not key:
        return None
    raw = json.dumps({k: str(v) for k, v in sorted(key.items())}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected: dict[str, str | None]) -> dict[str, str] | None:
    """The key a cursor stands for; ``expected`` names its attributes (a value pins it). 400 if it is not ours."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise BadRequestError("the cursor is not one this API returned") from None
    ok = (
        isinstance(key, dict)
        and set(key) == set(expected)
        and all(isinstance(v, str) and 0 < len(v) <= 1024 for v in key.values())
        and all(pinned is None or key[name] == pinned for name, pinned in expected.items())
    )
    if not ok:
        raise BadRequestError("the cursor is not one this API returned")
    return key


_T = TypeVar("_T")
INDEX_KEYS = ("pk", "sk", "gsi1pk", "gsi1sk")
MAX_PAGES_READ = 10
"""Index pages one listing request reads at most to fill a filtered page."""


def listing_page(
    table: Table,
    partition: str,
    sk: str | None,
    wanted: Callable[[list[dict[str, Any]]], list[_T | None]],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[_T], str | None]:
    """One page of a ``gsi1`` listing, newest first: up to ``limit`` of what ``wanted`` makes of the index's
    items (None: left out), and the cursor after the last one read, or None at the end.

    A filtered listing reads index pages until the page is full, ``MAX_PAGES_READ`` at most (then a shorter
    page, with a cursor). ``sk`` pins the sort key a cursor's item has (None: any).
    """
    position = decode_cursor(cursor, {"pk": None, "sk": sk, "gsi1pk": partition, "gsi1sk": None})
    found: list[_T] = []
    for _ in range(MAX_PAGES_READ):
        page = table.query(**newest_first(partition, limit, position))
        items = page.get("Items", [])
        for index, (item, value) in enumerate(zip(items, wanted(items), strict=True)):
            position = {k: str(item[k]) for k in INDEX_KEYS}
            if value is None:
                continue
            found.append(value)
            if len(found) == limit:
                more = index < len(items) - 1 or "LastEvaluatedKey" in page
                return found, encode_cursor(position) if more else None
        if "LastEvaluatedKey" not in page:
            return found, None
        position = {k: str(v) for k, v in page["LastEvaluatedKey"].items()}
    return found, encode_cursor(position)


def condition_failed(exc: ClientError) -> bool:
    """True when a conditional write was refused because its condition did not hold."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


LAST_EVENT = "last_event_json"
"""The attribute a write stamps its event into (see :func:`event_stamp`)."""


def dump_json(value: Any) -> str:
    """JSON as the ``*_json`` attributes store it: compact, non-ASCII characters kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Written:
    """What a conditional write did: ``done`` when its condition held (truthy then). ``item`` is the item
    the write returned: as written when asked for (``returns="ALL_NEW"``), or, when the condition failed,
    as it stood (None if there was none), so the writer needs no read to learn what stood in its way."""

    done: bool
    item: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return self.done


def conditional_update(
    table: Table,
    update: dict[str, Any],
    *,
    stamp: dict[str, Any] | None = None,
    returns: Literal["NONE", "ALL_NEW"] = "NONE",
) -> Written:
    """One conditional ``update_item``, stamping ``stamp`` (the event it announces) into the item in the same
    request; not done when its condition failed (other errors propagate)."""
    if stamp is not None:
        values = {**update.get("ExpressionAttributeValues", {}), ":last_event": dump_json(stamp)}
        expression = add_set(str(update["UpdateExpression"]), f"{LAST_EVENT} = :last_event")
        update = {**update, "UpdateExpression": expression, "ExpressionAttributeValues": values}
    try:
        response = table.update_item(**update, ReturnValues=returns, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as exc:
        if not condition_failed(exc):
            raise
        return Written(done=False, item=old_item(exc))
    return Written(done=True, item=response.get("Attributes") or None)


def put_once(table: Table, item: dict[str, Any], *, stamp: dict[str, Any] | None = None) -> Written:
    """Put ``item`` (stamped with ``stamp``, the event it announces) unless its key exists; not done then, with
    the item that stood there: a repeat changes nothing and costs no read."""
    if stamp is not None:
        item = {**item, LAST_EVENT: dump_json(stamp)}
    try:
        table.put_item(
            Item=item, ConditionExpression="attribute_not_exists(sk)", ReturnValuesOnConditionCheckFailure="ALL_OLD"
        )
    except ClientError as exc:
        if not condition_failed(exc):
            raise
        return Written(done=False, item=old_item(exc))
    return Written(done=True, item=item)


_DESERIALIZER = TypeDeserializer()


def old_item(exc: ClientError) -> dict[str, Any] | None:
    """The item a failed conditional write returned (``ReturnValuesOnConditionCheckFailure: ALL_OLD``), so the
    writer needs no read to learn what stood in its way; None when there was no item."""
    raw = exc.response.get("Item")
    if not isinstance(raw, dict) or not raw:
        return None
    return {key: _DESERIALIZER.deserialize(value) for key, value in raw.items()}
