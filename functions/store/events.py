"""Run events: numbered items written by the stream function, paged by ``seq`` for readers.

Writers never put events. Each write that changes a status stamps the event announcing it into the
written item (``last_event_json``); the stream function (functions/stream) reads the table's stream and
appends each new stamp to its run's log with the next ``seq``: ``EVENT#<seq:010d>``, 1, 2, 3... in the
order of the writes. Per run it keeps a counter item (``SEQ``): the last ``seq`` given, the stream
sequence number of the last record numbered (so a redelivered batch numbers nothing twice) and the
``seq`` of the run's terminal ``RUN_*`` event (cleared by a ``RUN_RESUMED``: the run goes on, and its
events keep their numbers). An event is put before the counter moves past it, so a
delivery that died in between finds its event already there (same ``eid``) and goes on.

The counter also says whether the run was ever followed (``followed``, set by a WebSocket subscribe before
its subscription item is written): the counter's update returns it, so the stream function looks a run's
subscribers up only for runs someone follows, without a request of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.errors import StoreError
from functions.store.table import TableHandle, condition_failed, event_sk, put_once, run_pk
from statemachine.status import RUN_TERMINAL

COUNTER_SK = "SEQ"
RUN_EVENT = {status: f"RUN_{status}" for status in RUN_TERMINAL}
"""The event a run's terminal status is announced by (``RUN_SUCCEEDED``...)."""
RUN_TERMINAL_EVENTS = tuple(RUN_EVENT.values())
RUN_RESUMED = "RUN_RESUMED"
"""A terminal run resumed: the terminal ``seq`` no longer ends its log."""


def terminal_after(terminal: int | None, event_type: Any, seq: int) -> int | None:
    """The run's terminal ``seq`` once the event ``event_type`` numbered ``seq`` is in its log."""
    if event_type == RUN_RESUMED:
        return None
    if event_type in RUN_TERMINAL_EVENTS and terminal is None:
        return seq
    return terminal


_LAST_KEY = event_sk(9_999_999_999)


@dataclass
class EventPage:
    """A page of events in ``seq`` order; ``next`` is set when more events are stored now, ``cursor`` is
    the ``seq`` of the last event returned (or ``after`` when none were)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    next: int | None = None
    cursor: int = 0


def parse_event(item: dict[str, Any]) -> dict[str, Any]:
    """An event item → the public shape of ``GET /runs/{id}/events`` (DESIGN.md)."""
    event: dict[str, Any] = {
        "seq": int(item["seq"]),
        "at": item["at"],
        "type": item["type"],
        "node": item.get("node"),
        "attempt": None if item.get("attempt") is None else int(item["attempt"]),
        "message": item.get("message", ""),
    }
    if "iteration" in item:
        event["iteration"] = int(item["iteration"])
    if "error_json" in item:
        event["error"] = json.loads(item["error_json"])
    if item.get("cached"):
        event["cached"] = True
    return event


class EventOrderError(StoreError):
    """Another writer numbered events of the same run at the same time (the batch is retried)."""


@dataclass(frozen=True)
class Counter:
    """A run's event counter: last ``seq`` given, last stream sequence number numbered, terminal ``seq``, and
    whether a subscriber ever followed the run (as of the counter's last read or update)."""

    seq: int = 0
    stream_sn: int = 0
    terminal_seq: int | None = None
    followed: bool = False


@dataclass(frozen=True)
class Appended:
    """What an append numbered (event items, each with the stream sequence number it came from) and the
    run's counter after it."""

    events: list[tuple[int, dict[str, Any]]]
    counter: Counter


def _counter_of(item: dict[str, Any]) -> Counter:
    terminal = item.get("terminal_seq")
    return Counter(
        seq=int(str(item.get("seq", 0))),
        stream_sn=int(str(item.get("stream_sn") or 0)),
        terminal_seq=None if terminal is None else int(str(terminal)),
        followed=bool(item.get("followed")),
    )


class EventLog(TableHandle):
    """Appends numbered events (the stream function) and pages them (the API, the WebSocket push)."""

    def counter(self, run_id: str) -> Counter:
        item = self.table.get_item(Key={"pk": run_pk(run_id), "sk": COUNTER_SK}, ConsistentRead=True).get("Item")
        return _counter_of(item) if item else Counter()

    def follow(self, run_id: str) -> None:
        """Mark the run followed (for good): from now on the stream function looks up its subscribers.

        Called before a subscription item is written, so every batch whose records come after that item in
        the stream finds the mark in its counter update."""
        self.table.update_item(
            Key={"pk": run_pk(run_id), "sk": COUNTER_SK},
            UpdateExpression="SET followed = :yes",
            ExpressionAttributeValues={":yes": True},
        )

    def append(self, run_id: str, stamps: list[tuple[int, dict[str, Any]]], counter: Counter | None = None) -> Appended:
        """Number ``(stream sequence number, stamp)`` pairs after the run's last event; the new event items
        with the sequence number of the record each came from, and the counter after them.

        Pairs at or before the counter's stream position were numbered by an earlier delivery and are
        skipped. ``counter`` is the run's counter if the caller just read it. ``EventOrderError`` when
        another writer moved the counter meanwhile.
        """
        counter = counter or self.counter(run_id)
        fresh = [(sn, stamp) for sn, stamp in stamps if sn > counter.stream_sn]
        if not fresh:
            return Appended([], counter)
        pk = run_pk(run_id)
        seq = counter.seq
        terminal = counter.terminal_seq
        written: list[tuple[int, dict[str, Any]]] = []
        for sn, stamp in fresh:
            seq += 1
            item = {**stamp, "pk": pk, "sk": event_sk(seq), "seq": seq}
            put = put_once(self.table, item)
            if not put and (put.item or {}).get("eid") != stamp.get("eid"):
                raise EventOrderError(f"event {seq} of run {run_id} was numbered by another writer")
            terminal = terminal_after(terminal, stamp.get("type"), seq)
            written.append((sn, item))
        values: dict[str, Any] = {":seq": seq, ":sn": str(fresh[-1][0]), ":old": counter.seq}
        sets = ["seq = :seq", "stream_sn = :sn"]
        removed = ""
        if terminal is not None:
            sets.append("terminal_seq = :t")
            values[":t"] = terminal
        elif counter.terminal_seq is not None:
            removed = " REMOVE terminal_seq"
        try:
            updated = self.table.update_item(
                Key={"pk": pk, "sk": COUNTER_SK},
                UpdateExpression="SET " + ", ".join(sets) + removed,
                ConditionExpression="attribute_not_exists(seq) OR seq = :old",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                raise EventOrderError(f"the event counter of run {run_id} moved meanwhile") from exc
            raise
        return Appended(written, _counter_of(updated.get("Attributes") or {}))

    def page(self, run_id: str, *, after: int = 0, limit: int = 100) -> EventPage:
        """Events with ``seq`` > ``after``, in order; ``next`` is set when more are stored now."""
        after = max(0, int(after))
        response = self.table.query(
            KeyConditionExpression=Key("pk").eq(run_pk(run_id)) & Key("sk").between(event_sk(after + 1), _LAST_KEY),
            ConsistentRead=True,
            Limit=max(1, min(limit, 1000)),
        )
        events = [parse_event(item) for item in response.get("Items", [])]
        cursor = events[-1]["seq"] if events else after
        return EventPage(events=events, next=cursor if "LastEvaluatedKey" in response else None, cursor=cursor)
