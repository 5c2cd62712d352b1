"""The stream function: the table's DynamoDB stream → numbered run events → WebSocket subscribers.

Lambda's event source mapping delivers the stream's records in order, one batch at a time per shard, and
a run's items share a partition key, so a run's records arrive in the order its items were written. For
each run in a batch, in that order:

- an item whose ``last_event_json`` stamp changed (a node or item transition, a ``DEDUP#`` event, the
  run item's ``RUN_*``) becomes the run's next event (``EventLog.append``), sent to every live subscriber;
- a new subscription (``SUB#`` insert) gets every event numbered so far after its ``after``, then
  becomes live; after a run's terminal event a subscriber gets ``{"type": "run"}`` and its subscription
  ends (unless a ``RUN_RESUMED`` follows it in what the subscriber catches up on: the run goes on);
- a removed subscription stops receiving.

Subscriptions are looked up only for a run marked followed (``EventLog.follow``, before the first
subscription item is written); the counter update each batch makes returns the mark.

A run whose records fail is reported in ``batchItemFailures`` from its first record; records already
numbered are skipped when they come again (the counter keeps the stream position).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from functions.live.push import ApiGatewayPoster, Outbox
from functions.live.subscriptions import SUB_PREFIX, Subscriptions, parse_subscription
from functions.store.events import RUN_RESUMED, RUN_TERMINAL_EVENTS, EventLog, parse_event, terminal_after
from functions.store.runs import RunStore

if TYPE_CHECKING:
    from functions.live.push import Poster
    from functions.live.subscriptions import Subscription
    from functions.store.events import Counter

LOG = logging.getLogger(__name__)
_DESERIALIZER = TypeDeserializer()
_FILL_ATTEMPT = ("NODE#", "ITEM#")
MAX_CACHED_COUNTERS = 1000


@dataclass
class Change:
    """One stream record of a run's partition, reduced to what the stream function acts on."""

    sn: int
    record_id: str
    run_id: str
    sk: str
    stamp: dict[str, Any] | None = None
    subscribed: Subscription | None = None
    unsubscribed: str | None = None


def _image(record: dict[str, Any], which: str, *names: str) -> dict[str, Any]:
    raw = (record.get("dynamodb") or {}).get(which) or {}
    return {name: _DESERIALIZER.deserialize(raw[name]) for name in names if name in raw}


def parse_record(record: dict[str, Any]) -> Change | None:
    """The change a stream record makes to a run, or None when it concerns no run's events."""
    body = record.get("dynamodb") or {}
    keys = {k: _DESERIALIZER.deserialize(v) for k, v in (body.get("Keys") or {}).items()}
    pk, sk = str(keys.get("pk", "")), str(keys.get("sk", ""))
    if not pk.startswith("RUN#"):
        return None
    change = Change(
        sn=int(body.get("SequenceNumber") or 0),
        record_id=str(body.get("SequenceNumber") or ""),
        run_id=pk.removeprefix("RUN#"),
        sk=sk,
    )
    name = record.get("eventName")
    if sk.startswith(SUB_PREFIX):
        if name == "INSERT":
            image = _image(record, "NewImage", "pk", "sk", "connection_id", "after")
            change.subscribed = parse_subscription(image)
        elif name == "REMOVE":
            change.unsubscribed = sk.removeprefix(SUB_PREFIX)
        return change
    if name == "REMOVE":
        return None
    new = _image(record, "NewImage", "last_event_json", "attempts")
    old = _image(record, "OldImage", "last_event_json")
    if not isinstance(new.get("last_event_json"), str):
        return None
    stamp = json.loads(new["last_event_json"])
    previous = old.get("last_event_json")
    if isinstance(previous, str) and json.loads(previous).get("eid") == stamp.get("eid"):
        return None  # the item changed, but no new transition (e.g. a foreach item counted)
    if stamp.get("attempt") is None and sk.startswith(_FILL_ATTEMPT) and new.get("attempts") is not None:
        stamp["attempt"] = int(new["attempts"])
    stamp.pop("pk", None)
    stamp.pop("sk", None)
    change.stamp = stamp
    return change


def run_message(run_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """The final ``run`` frame after the run's terminal event."""
    return {
        "type": "run",
        "run_id": run_id,
        "status": str(event["type"]).removeprefix("RUN_"),
        "error": event.get("error"),
    }


def event_message(run_id: str, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "event",
        "run_id": run_id,
        "event": {
            "seq": event["seq"],
            "at": event["at"],
            "type": event["type"],
            "node": event.get("node"),
            "iteration": event.get("iteration"),
            "attempt": event.get("attempt"),
            "message": event.get("message", ""),
            **({"error": event["error"]} if "error" in event else {}),
            **({"cached": True} if event.get("cached") else {}),
        },
    }


class StreamProcessor:
    """Numbers events and pushes them; collaborators injected (tests) or made on first use."""

    def __init__(
        self,
        *,
        table: Any = None,
        poster: Poster | None = None,
    ) -> None:
        self.log = EventLog(table)
        self.subscriptions = Subscriptions(table)
        self.runs = RunStore(table)
        self.poster: Poster = poster or ApiGatewayPoster()
        self._counters: OrderedDict[str, Counter] = OrderedDict()
        """Counters this instance moved last (saves a read per batch; a stale one fails its conditional
        update, and the batch is retried with a fresh read)."""

    def _remember(self, run_id: str, counter: Counter) -> None:
        self._counters[run_id] = counter
        while len(self._counters) > MAX_CACHED_COUNTERS:
            self._counters.popitem(last=False)

    def process(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Handle one batch; ``batchItemFailures`` names the first record of each run that failed."""
        by_run: dict[str, list[Change]] = {}
        for record in records:
            change = parse_record(record)
            if change is not None and (change.stamp or change.subscribed or change.unsubscribed):
                by_run.setdefault(change.run_id, []).append(change)
        outbox = Outbox(self.poster, self.subscriptions)
        failures: list[dict[str, str]] = []
        for run_id, changes in by_run.items():
            try:
                self._process_run(run_id, changes, outbox)
            except Exception:
                LOG.exception("could not process the stream records of run %s", run_id)
                failures.append({"itemIdentifier": changes[0].record_id})
        outbox.flush()
        if failures:
            # The event source mapping retries from the earliest failed record.
            failures.sort(key=lambda f: int(f["itemIdentifier"] or 0))
        return {"batchItemFailures": failures[:1]}

    def _process_run(self, run_id: str, changes: list[Change], outbox: Outbox) -> None:
        counter = self._counters.pop(run_id, None) or self.log.counter(run_id)
        stamps = [(c.sn, c.stamp) for c in changes if c.stamp is not None]
        appended = self.log.append(run_id, stamps, counter)
        self._remember(run_id, appended.counter)
        by_sn = {sn: item for sn, item in appended.events}
        live: dict[str, Subscription] = {}
        if by_sn and appended.counter.followed:  # nobody ever subscribed: no subscription to look up
            live = {s.connection_id: s for s in self.subscriptions.of_run(run_id) if s.live}
        seq = counter.seq
        terminal: dict[str, Any] | None = None
        terminal_seq = counter.terminal_seq
        for change in changes:
            if change.sn in by_sn:
                event = parse_event(by_sn[change.sn])
                seq = event["seq"]
                terminal_seq = terminal_after(terminal_seq, event["type"], seq)
                for connection_id in live:
                    outbox.add(connection_id, event_message(run_id, event))
                if event["type"] == RUN_RESUMED:
                    terminal = None
                if event["type"] in RUN_TERMINAL_EVENTS:
                    terminal = event
                    for connection_id in list(live):
                        outbox.add(connection_id, run_message(run_id, event))
                        self.subscriptions.end(run_id, connection_id)
                        live.pop(connection_id)
            elif change.subscribed is not None:
                if self._catch_up(change.subscribed, seq, terminal_seq, terminal, outbox):
                    live[change.subscribed.connection_id] = change.subscribed
            elif change.unsubscribed is not None:
                live.pop(change.unsubscribed, None)

    def _catch_up(
        self,
        sub: Subscription,
        upto: int,
        terminal_seq: int | None,
        terminal: dict[str, Any] | None,
        outbox: Outbox,
    ) -> bool:
        """Send a new subscriber the events after its ``after`` up to ``upto``; True when it stays live."""
        after = sub.after
        ended: dict[str, Any] | None = None
        while after < upto:
            page = self.log.page(sub.run_id, after=after, limit=min(1000, upto - after))
            if not page.events:
                break
            for event in page.events:
                if event["seq"] > upto:
                    break
                outbox.add(sub.connection_id, event_message(sub.run_id, event))
                if event["type"] in RUN_TERMINAL_EVENTS:
                    ended = event
                elif event["type"] == RUN_RESUMED:
                    ended = None
            after = page.cursor
        if ended is None and terminal is not None and terminal["seq"] <= upto:
            ended = terminal
        if ended is None and terminal_seq is not None and terminal_seq <= upto:
            ended = next(iter(self.log.page(sub.run_id, after=terminal_seq - 1, limit=1).events), None)
        if ended is not None:
            outbox.add(sub.connection_id, run_message(sub.run_id, ended))
            self.subscriptions.end(sub.run_id, sub.connection_id)
            return False
        self.subscriptions.mark_live(sub.run_id, sub.connection_id, upto)
        return True
