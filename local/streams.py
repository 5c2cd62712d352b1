"""The table's DynamoDB stream, delivered to a function as Lambda's event source mapping delivers it.

moto records every write of a table with a stream in the table's (single) shard. ``TableStream`` takes
each record as moto appends it (in write order: the local cloud serializes DynamoDB requests), applies
the mapping's filter patterns, and delivers batches of up to ``batch_size`` records, in order, one batch
at a time: a function error retries the same batch, ``batchItemFailures`` retries from the first
failed record, and after ``max_retries`` the batch is set aside in ``dead_letters`` (the mapping's
on-failure destination in AWS). Records leave moto's shard as they are taken, so a long ``make dev``
session does not keep every write in memory; ``GetRecords`` on the local stream therefore finds none.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from local.template import pattern_matches

LOG = logging.getLogger(__name__)
RETRY_DELAY_SECONDS = 0.05
MAX_LOCAL_RETRIES = 50
"""Retries of one batch before it is set aside locally (the template may say -1: until the record expires)."""

Deliver = Callable[[list[dict[str, Any]]], Any]
"""``deliver(records)`` → the function's response (``{"batchItemFailures": [...]}``); raises on a function error."""


@dataclass
class TableStream:
    """One table's stream and one event source mapping on it."""

    table_name: str
    stream_arn: str
    deliver: Deliver
    batch_size: int = 100
    max_retries: int = -1
    filters: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[list[dict[str, Any]]] = field(default_factory=list)
    delivered: int = 0
    _records: deque[dict[str, Any]] = field(default_factory=deque)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _busy: bool = False
    _held: int = 0
    _stopping: bool = False
    _thread: threading.Thread | None = None
    _sequence: int = 0
    _restore: list[Callable[[], None]] = field(default_factory=list)

    # ------------------------------------------------------------------ taking records from moto

    def install(self) -> None:
        """Take each record moto's shard appends for this table (until ``uninstall``)."""
        from moto.dynamodb.models.table import StreamShard

        original = StreamShard.add
        stream = self

        def add(shard: Any, old: Any, new: Any) -> None:
            original(shard, old, new)
            if shard.table.name != stream.table_name or not shard.items:
                return
            record = shard.items.pop().to_json()
            stream._take(record)

        StreamShard.add = add  # type: ignore[method-assign,assignment]
        self._restore.append(lambda: setattr(StreamShard, "add", original))

    def uninstall(self) -> None:
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()

    def _take(self, record: dict[str, Any]) -> None:
        body = dict(record.get("dynamodb") or {})
        with self._cond:
            self._sequence += 1
            body["SequenceNumber"] = f"{self._sequence:021d}"
            created = body.get("ApproximateCreationDateTime")
            if isinstance(created, _dt.datetime):
                body["ApproximateCreationDateTime"] = int(created.replace(tzinfo=_dt.UTC).timestamp())
            record = {**record, "dynamodb": body, "eventSourceARN": self.stream_arn}
            if self.filters and not any(pattern_matches(f, record) for f in self.filters):
                return
            self._records.append(record)
            self._cond.notify_all()

    # ------------------------------------------------------------------ delivering batches

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="local-dynamodb-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.drain(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self.uninstall()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Deliver nothing inside the block (records wait, in order), as a mapping that is behind would."""
        with self._cond:
            self._held += 1
        try:
            yield
        finally:
            with self._cond:
                self._held -= 1
                self._cond.notify_all()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every record taken so far has been delivered (or set aside); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._records or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def pump(self) -> None:
        """Deliver everything taken so far on this thread (for tests without the delivery thread)."""
        while self._next_batch(block=False):
            pass

    def _loop(self) -> None:
        while self._next_batch(block=True):
            pass

    def _next_batch(self, *, block: bool) -> bool:
        with self._cond:
            while not self._records or (self._held and not self._stopping):
                if self._stopping or not block:
                    return False
                self._cond.wait()
            batch = [self._records.popleft() for _ in range(min(self.batch_size, len(self._records)))]
            self._busy = True
        try:
            self._deliver(batch)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return True

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        limit = MAX_LOCAL_RETRIES if self.max_retries < 0 else min(self.max_retries, MAX_LOCAL_RETRIES)
        attempt = 0
        while batch:
            try:
                response = self.deliver(batch)
            except Exception:
                LOG.exception("stream batch of %d records failed", len(batch))
                failed_from = 0
            else:
                first = _first_failure(batch, response)
                if first is None:
                    self.delivered += len(batch)
                    return
                failed_from = first
            self.delivered += failed_from
            batch = batch[failed_from:]
            attempt += 1
            if attempt > limit or self._stopping:
                LOG.warning("stream batch of %d records set aside after %d retries", len(batch), attempt - 1)
                self.dead_letters.append(batch)
                return
            time.sleep(RETRY_DELAY_SECONDS)


def _first_failure(batch: list[dict[str, Any]], response: Any) -> int | None:
    """The index of the first record ``batchItemFailures`` names, or None when the batch succeeded."""
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if not failures:
        return None
    named = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict)}
    for index, record in enumerate(batch):
        if str(record["dynamodb"].get("SequenceNumber")) in named:
            return index
    return 0
