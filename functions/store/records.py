"""Node result items and run events: idempotent writes by the executor, reads for the API.

Every status change of a node item is one conditional update that also stamps the event announcing it
(``last_event_json``); the event is then put under its own key, at most once. A redelivered invocation
fails the condition, so it neither duplicates the event nor overwrites a terminal status; if the first
delivery died between the two writes, the redelivery puts the stamped event for it. Events without a
status change (``LOG``, ``RUN_*``) are deduplicated the same way through a ``DEDUP#<key>`` marker.

Single-item conditional writes rather than transactions: they cost half the write units, and moto's
transaction rollback restores a whole-table snapshot, which loses concurrent writes in the local cloud.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.store.table import (
    TableHandle,
    condition_failed,
    conditional_update,
    event_item,
    node_sk,
    now_iso,
    put_once,
    run_pk,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_dynamodb.service_resource import Table

TERMINAL_NODE = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED")
NODE_PREFIX = "NODE#"
EVENT_PREFIX = "EVENT#"
DEDUP_PREFIX = "DEDUP#"
ITEM_PREFIX = "ITEM#"
MAX_MESSAGE = 4000

_NOT_TERMINAL = "(attribute_not_exists(#status) OR NOT #status IN (:t0, :t1, :t2, :t3))"
_TERMINAL_VALUES = {f":t{i}": s for i, s in enumerate(TERMINAL_NODE)}


@dataclass(frozen=True)
class StartOutcome:
    """What ``start_attempt`` found: ``started`` is False for a redelivery; ``node`` is the item then."""

    started: bool
    node: NodeRecord | None = None


@dataclass
class NodeRecord:
    """One node result item (``NODE#<node>#<iteration>``), parsed; ``output`` may hold references."""

    node: str
    iteration: int
    status: str
    attempts: int
    tool: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    tool_ms: int | None = None
    output: Any = None
    error: dict[str, str] | None = None
    items_total: int | None = None
    items_done: int | None = None
    failed_attempt: int | None = None
    index: int | None = None
    starts: int = 0
    """Attempts the executor began (Step Functions' retry count also counts throttled invokes, which never ran)."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_NODE


@dataclass
class EventPage:
    """A page of events; ``next`` is set when more events exist now, ``cursor`` resumes after the last one."""

    events: list[dict[str, Any]] = field(default_factory=list)
    next: str | None = None
    cursor: str | None = None


def item_sk(node: str, iteration: int, index: int) -> str:
    """The sort key of one ``foreach`` item's record: ``ITEM#<node>#<iteration:04d>#<index:06d>``."""
    return f"{ITEM_PREFIX}{node}#{iteration:04d}#{index:06d}"


def encode_cursor(sk: str) -> str:
    return base64.urlsafe_b64encode(sk.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The event sort key a cursor stands for; ``ValueError`` when it is not one of ours."""
    try:
        sk = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not sk.startswith(EVENT_PREFIX):
        raise ValueError("invalid cursor")
    return sk


def _ms_between(start: str | None, end: str) -> int | None:
    if not start:
        return None
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    try:
        delta = datetime.strptime(end, fmt) - datetime.strptime(start, fmt)
    except ValueError:
        return None
    return max(0, int(delta.total_seconds() * 1000))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_node(item: dict[str, Any]) -> NodeRecord:
    """A node item as stored → ``NodeRecord`` (JSON strings parsed, Decimals to int)."""
    # The key says which node and iteration; attributes may be missing from a partial item.
    key_parts = str(item.get("sk", "")).split("#")
    return NodeRecord(
        node=str(item.get("node") or (key_parts[1] if len(key_parts) > 2 else "")),
        iteration=int(item.get("iteration") or (key_parts[2] if len(key_parts) > 2 else 0)),
        status=item.get("status", "PENDING"),
        attempts=int(item.get("attempts", 0)),
        tool=item.get("tool"),
        started_at=item.get("started_at"),
        finished_at=item.get("finished_at"),
        duration_ms=_int(item.get("duration_ms")),
        tool_ms=_int(item.get("tool_ms")),
        output=json.loads(item["output_json"]) if "output_json" in item else None,
        error=json.loads(item["error_json"]) if "error_json" in item else None,
        items_total=_int(item.get("items_total")),
        items_done=len(item["items_done_set"]) if "items_done_set" in item else None,
        failed_attempt=_int(item.get("failed_attempt")),
        index=_int(item.get("index")),
        starts=int(item.get("starts", 0)),
    )


def parse_event(item: dict[str, Any]) -> dict[str, Any]:
    """An event item → the public shape of ``GET /runs/{id}/events`` (DESIGN.md)."""
    event: dict[str, Any] = {
        "at": item["at"],
        "type": item["type"],
        "node": item.get("node"),
        "attempt": _int(item.get("attempt")),
        "message": item.get("message", ""),
    }
    if "iteration" in item:
        event["iteration"] = int(item["iteration"])
    if "error_json" in item:
        event["error"] = json.loads(item["error_json"])
    return event


class Records(TableHandle):
    """Writes and reads node items and run events of one table (inject ``table`` in tests)."""

    def __init__(self, table: Table | None = None) -> None:
        super().__init__(table)

    # -- events ---------------------------------------------------------------------------------

    def _event_item(
        self,
        run_id: str,
        type_: str,
        *,
        node: str | None,
        attempt: int | None,
        iteration: int | None,
        message: str,
        error: dict[str, str] | None = None,
        at: str | None = None,
    ) -> dict[str, Any]:
        at = at or now_iso()
        return event_item(
            run_id,
            type_,
            at,
            message[:MAX_MESSAGE],
            node=node,
            attempt=attempt,
            iteration=iteration,
            error_json=_json(error) if error else None,
        )

    def put_event(
        self,
        run_id: str,
        type_: str,
        *,
        node: str | None = None,
        attempt: int | None = None,
        iteration: int | None = None,
        message: str = "",
        error: dict[str, str] | None = None,
        key: str | None = None,
    ) -> bool:
        """Append an event; with ``key`` it is written at most once per run. False when it was a duplicate."""
        item = self._event_item(
            run_id, type_, node=node, attempt=attempt, iteration=iteration, message=message, error=error
        )
        if key is None:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(sk)")
            return True
        marker = {"pk": run_pk(run_id), "sk": f"{DEDUP_PREFIX}{key}", "event_json": _json(item)}
        try:
            self.table.put_item(Item=marker, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            existing = self.table.get_item(Key={"pk": marker["pk"], "sk": marker["sk"]}, ConsistentRead=True)
            stamped = (existing.get("Item") or {}).get("event_json")
            if isinstance(stamped, str):
                put_once(self.table, json.loads(stamped))
            return False
        put_once(self.table, item)
        return True

    def list_events(self, run_id: str, *, after: str | None = None, limit: int = 100) -> EventPage:
        """Events in time order after ``after`` (a cursor from a previous page); ``ValueError`` for a bad cursor."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": run_pk(run_id), ":prefix": EVENT_PREFIX},
            "Limit": max(1, min(limit, 1000)),
        }
        if after:
            kwargs["ExclusiveStartKey"] = {"pk": run_pk(run_id), "sk": decode_cursor(after)}
        response = self.table.query(**kwargs)
        items = response.get("Items", [])
        page = EventPage(events=[parse_event(i) for i in items])
        last_sk = items[-1]["sk"] if items else (decode_cursor(after) if after else None)
        page.cursor = encode_cursor(str(last_sk)) if last_sk else None
        if response.get("LastEvaluatedKey") and items:
            page.next = page.cursor
        return page

    # -- node items -----------------------------------------------------------------------------

    def get_node(self, run_id: str, node: str, iteration: int) -> NodeRecord | None:
        response = self.table.get_item(Key={"pk": run_pk(run_id), "sk": node_sk(node, iteration)}, ConsistentRead=True)
        item = response.get("Item")
        return parse_node(item) if item else None

    def get_item(self, run_id: str, node: str, iteration: int, index: int) -> NodeRecord | None:
        """One ``foreach`` item's record, or None before it started."""
        return self._get(run_id, item_sk(node, iteration, index))

    def list_nodes(self, run_id: str) -> list[NodeRecord]:
        """Every node item of a run, ordered by node id then iteration."""
        records: list[NodeRecord] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": run_pk(run_id), ":prefix": NODE_PREFIX},
        }
        while True:
            response = self.table.query(**kwargs)
            records.extend(parse_node(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def start_attempt(
        self,
        run_id: str,
        node: str,
        iteration: int,
        attempt: int,
        *,
        tool: str,
        items_total: int | None = None,
        at: str | None = None,
    ) -> StartOutcome:
        """Mark the node RUNNING for ``attempt`` and write ``NODE_STARTED``, unless this attempt was seen already.

        A redelivery (this attempt or a later one recorded, or the node already terminal) changes nothing
        and returns the current item so the caller can answer from it. ``at`` overrides the start time
        (a ``lambda:`` node started when its Task was entered).
        """
        at = at or now_iso()
        update = self._start_update(run_id, node_sk(node, iteration), node, iteration, attempt, tool, at)
        if items_total is not None:
            update["UpdateExpression"] += ", items_total = :total"
            update["ExpressionAttributeValues"][":total"] = items_total
        event = self._event_item(
            run_id,
            "NODE_STARTED",
            node=node,
            attempt=attempt,
            iteration=iteration,
            message=f"{node} started {tool} (attempt {attempt})",
            at=at,
        )
        if self._transition(update, event):
            return StartOutcome(started=True)
        return StartOutcome(started=False, node=self.get_node(run_id, node, iteration))

    def succeed_attempt(
        self,
        run_id: str,
        node: str,
        iteration: int,
        attempt: int,
        *,
        output: Any,
        tool_ms: int | None = None,
        message: str = "",
    ) -> bool:
        """Mark the node SUCCEEDED with its (possibly referenced) output and write ``NODE_SUCCEEDED``.

        False when the node was already terminal (a redelivered invocation finished first) or a later
        attempt has started since (this one is stale: Step Functions no longer waits for it).
        """
        at = now_iso()
        current = self.get_node(run_id, node, iteration)
        update = self._succeed_update(
            run_id, node_sk(node, iteration), attempt, output, tool_ms, at, current.started_at if current else None
        )
        event = self._event_item(
            run_id,
            "NODE_SUCCEEDED",
            node=node,
            attempt=attempt,
            iteration=iteration,
            message=message
            or f"{node} succeeded (attempt {attempt}" + (f", tool ran {tool_ms} ms)" if tool_ms is not None else ")"),
            at=at,
        )
        return self._transition(update, event)

    def fail_attempt(
        self,
        run_id: str,
        node: str,
        iteration: int,
        attempt: int,
        *,
        error: dict[str, str],
        final: bool,
        message: str = "",
    ) -> bool:
        """Record a failed attempt: ``NODE_RETRYING`` (status stays RUNNING) or, when ``final``, ``NODE_FAILED``.

        False when this attempt's failure was already recorded, a later attempt started, or the node is
        already terminal.
        """
        at = now_iso()
        current = self.get_node(run_id, node, iteration) if final else None
        update = self._fail_update(
            run_id, node_sk(node, iteration), attempt, error, final, at, current.started_at if current else None
        )
        type_ = "NODE_FAILED" if final else "NODE_RETRYING"
        verb = "failed" if final else "failed, will retry"
        event = self._event_item(
            run_id,
            type_,
            node=node,
            attempt=attempt,
            iteration=iteration,
            message=message or f"{node} {verb} (attempt {attempt}): {error['code']}: {error['message']}",
            error=error,
            at=at,
        )
        return self._transition(update, event)

    def fail_node(
        self, run_id: str, node: str, iteration: int, *, tool: str, error: dict[str, str], message: str = ""
    ) -> bool:
        """Mark a node FAILED with an error Step Functions raised (``States.Timeout``...) unless already terminal.

        Used for ``optional`` nodes whose failure was caught; writes ``NODE_FAILED`` once. Creates the
        item when the executor never started (e.g. every attempt timed out before recording).
        """
        at = now_iso()
        current = self.get_node(run_id, node, iteration)
        if current is not None and current.terminal:
            return False
        values: dict[str, Any] = {
            ":node": node,
            ":it": iteration,
            ":tool": tool,
            ":failed": "FAILED",
            ":at": at,
            ":err": _json(error),
            ":one": 1,
            **_TERMINAL_VALUES,
        }
        sets = [
            "#node = :node",
            "iteration = :it",
            "tool = if_not_exists(tool, :tool)",
            "#status = :failed",
            "finished_at = :at",
            "error_json = :err",
            "attempts = if_not_exists(attempts, :one)",
            "started_at = if_not_exists(started_at, :at)",
        ]
        duration = _ms_between(current.started_at if current else None, at)
        if duration is not None:
            sets.append("duration_ms = :d")
            values[":d"] = duration
        update = {
            "Key": {"pk": run_pk(run_id), "sk": node_sk(node, iteration)},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": f"attribute_not_exists(pk) OR {_NOT_TERMINAL}",
            "ExpressionAttributeNames": {"#status": "status", "#node": "node"},
            "ExpressionAttributeValues": values,
        }
        event = self._event_item(
            run_id,
            "NODE_FAILED",
            node=node,
            attempt=current.attempts if current else None,
            iteration=iteration,
            message=message or f"{node} failed: {error['code']}: {error['message']}",
            error=error,
            at=at,
        )
        return self._transition(update, event)

    # -- foreach items --------------------------------------------------------------------------

    def start_item(
        self, run_id: str, node: str, iteration: int, index: int, attempt: int, *, tool: str
    ) -> StartOutcome:
        """Mark one ``foreach`` item RUNNING for ``attempt`` (no event: the node's ``NODE_STARTED`` covers it)."""
        at = now_iso()
        sk = item_sk(node, iteration, index)
        update = self._start_update(run_id, sk, node, iteration, attempt, tool, at)
        update["UpdateExpression"] += ", #index = :index"
        update["ExpressionAttributeNames"]["#index"] = "index"
        update["ExpressionAttributeValues"][":index"] = index
        if conditional_update(self.table, update):
            return StartOutcome(started=True)
        return StartOutcome(started=False, node=self._get(run_id, sk))

    def succeed_item(
        self,
        run_id: str,
        node: str,
        iteration: int,
        index: int,
        attempt: int,
        *,
        output: Any,
        tool_ms: int | None = None,
    ) -> bool:
        """Mark an item SUCCEEDED with its output and count it in the node's ``items_done`` (once per index)."""
        at = now_iso()
        sk = item_sk(node, iteration, index)
        current = self._get(run_id, sk)
        update = self._succeed_update(run_id, sk, attempt, output, tool_ms, at, current.started_at if current else None)
        recorded = conditional_update(self.table, update)
        if recorded or (self._get(run_id, sk) or current or _NO_RECORD).status == "SUCCEEDED":
            self.count_items(run_id, node, iteration, [index])
        return recorded

    def count_items(self, run_id: str, node: str, iteration: int, indexes: Iterable[int]) -> None:
        """Count finished items in the node's ``items_done`` (a string set: counting twice changes nothing).

        Nothing happens while the node item does not exist yet (its first item has not started).
        """
        values = {f"{i:06d}" for i in indexes}
        if not values:
            return
        conditional_update(
            self.table,
            {
                "Key": {"pk": run_pk(run_id), "sk": node_sk(node, iteration)},
                "UpdateExpression": "ADD items_done_set :indexes",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":indexes": values},
            },
        )

    def fail_item(
        self,
        run_id: str,
        node: str,
        iteration: int,
        index: int,
        attempt: int,
        *,
        error: dict[str, str],
        final: bool,
    ) -> bool:
        """Record an item's failed attempt; a retry is announced by ``NODE_RETRYING`` naming the item.

        A final failure writes no event here: the caller fails the node (``fail_attempt``), which does.
        """
        at = now_iso()
        sk = item_sk(node, iteration, index)
        current = self._get(run_id, sk) if final else None
        update = self._fail_update(run_id, sk, attempt, error, final, at, current.started_at if current else None)
        if final:
            return conditional_update(self.table, update)
        event = self._event_item(
            run_id,
            "NODE_RETRYING",
            node=node,
            attempt=attempt,
            iteration=iteration,
            message=f"{node} item {index} failed, will retry (attempt {attempt}): {error['code']}: {error['message']}",
            error=error,
            at=at,
        )
        return self._transition(update, event)

    def list_items(self, run_id: str, node: str, iteration: int) -> list[NodeRecord]:
        """The item records of a ``foreach`` node run, in index order (strongly consistent)."""
        records: list[NodeRecord] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": run_pk(run_id), ":prefix": f"{ITEM_PREFIX}{node}#{iteration:04d}#"},
            "ConsistentRead": True,
        }
        while True:
            response = self.table.query(**kwargs)
            records.extend(parse_node(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return records
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- update builders ------------------------------------------------------------------------

    def _get(self, run_id: str, sk: str) -> NodeRecord | None:
        item = self.table.get_item(Key={"pk": run_pk(run_id), "sk": sk}, ConsistentRead=True).get("Item")
        return parse_node(item) if item else None

    def _start_update(
        self, run_id: str, sk: str, node: str, iteration: int, attempt: int, tool: str, at: str
    ) -> dict[str, Any]:
        sets = [
            "#node = :node",
            "iteration = :it",
            "tool = :tool",
            "#status = :running",
            "attempts = :a",
            "attempt_started_at = :at",
            "started_at = if_not_exists(started_at, :at)",
            "starts = if_not_exists(starts, :zero) + :one",
        ]
        return {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": f"attribute_not_exists(pk) OR ({_NOT_TERMINAL} AND attempts < :a)",
            "ExpressionAttributeNames": {"#status": "status", "#node": "node"},
            "ExpressionAttributeValues": {
                ":node": node,
                ":it": iteration,
                ":tool": tool,
                ":running": "RUNNING",
                ":a": attempt,
                ":at": at,
                ":zero": 0,
                ":one": 1,
                **_TERMINAL_VALUES,
            },
        }

    def _succeed_update(
        self, run_id: str, sk: str, attempt: int, output: Any, tool_ms: int | None, at: str, started_at: str | None
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":ok": "SUCCEEDED",
            ":a": attempt,
            ":at": at,
            ":out": _json(output),
            **_TERMINAL_VALUES,
        }
        sets = ["#status = :ok", "attempts = :a", "finished_at = :at", "output_json = :out"]
        duration = _ms_between(started_at, at)
        if duration is not None:
            sets.append("duration_ms = :d")
            values[":d"] = duration
        if tool_ms is not None:
            sets.append("tool_ms = :tm")
            values[":tm"] = tool_ms
        return {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE error_json",
            "ConditionExpression": f"attribute_exists(pk) AND {_NOT_TERMINAL} AND attempts <= :a",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }

    def _fail_update(
        self,
        run_id: str,
        sk: str,
        attempt: int,
        error: dict[str, str],
        final: bool,
        at: str,
        started_at: str | None,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {":a": attempt, ":err": _json(error), **_TERMINAL_VALUES}
        sets = ["attempts = :a", "failed_attempt = :a", "error_json = :err"]
        if final:
            sets += ["#status = :failed", "finished_at = :at"]
            values.update({":failed": "FAILED", ":at": at})
            duration = _ms_between(started_at, at)
            if duration is not None:
                sets.append("duration_ms = :d")
                values[":d"] = duration
        return {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": (
                f"attribute_exists(pk) AND {_NOT_TERMINAL} AND attempts <= :a"
                " AND (attribute_not_exists(failed_attempt) OR failed_attempt < :a)"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }

    # -- plumbing -------------------------------------------------------------------------------

    def _transition(self, update: dict[str, Any], event: dict[str, Any]) -> bool:
        """A status change and its event: stamp the event in the item, then put it once.

        The item always holds the stamp of its latest transition, so an event whose put failed (the
        Lambda died, or the write was throttled) is never lost: the next write to the item puts it, whether
        that write is a redelivery whose condition fails or the next transition (which reads the old stamp
        back and puts it if it is missing). Event keys are unique, so putting one twice changes nothing.
        """
        stamped = {
            **update,
            "UpdateExpression": _add_set(update["UpdateExpression"], "last_event_json = :last_event"),
            "ExpressionAttributeValues": {**update["ExpressionAttributeValues"], ":last_event": _json(event)},
            "ReturnValues": "UPDATED_OLD",
        }
        try:
            response = self.table.update_item(**stamped)
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            item = self.table.get_item(Key=update["Key"], ConsistentRead=True).get("Item") or {}
            self._ensure_event(item.get("last_event_json"))
            return False
        self._ensure_event((response.get("Attributes") or {}).get("last_event_json"))
        put_once(self.table, event)
        return True

    def _ensure_event(self, stamp: Any) -> None:
        """Put the stamped event if it is not in the table (an earlier put failed)."""
        if not isinstance(stamp, str):
            return
        event = json.loads(stamp)
        found = self.table.get_item(Key={"pk": event["pk"], "sk": event["sk"]}, ProjectionExpression="sk")
        if "Item" not in found:
            put_once(self.table, event)


_NO_RECORD = NodeRecord(node="", iteration=0, status="", attempts=0)


def _add_set(expression: str, clause: str) -> str:
    """``expression`` with ``clause`` added to its SET part (it may also have REMOVE/ADD parts)."""
    if expression.startswith("SET "):
        head, sep, rest = expression.partition(" REMOVE ")
        return f"{head}, {clause}{sep}{rest}"
    return f"SET {clause} {expression}"
