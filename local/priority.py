"""API requests first: the local cloud's one lock around moto's tables, and the gate background work waits at.

In AWS every Lambda invocation has its own CPU and DynamoDB serves each request on its own; locally they all
share one process and moto, which has no locking of its own. A write must not interleave with another request
(a conditional write checks, then writes), but reads can share: an API read no longer waits behind a background
``Query`` of thousands of items. Python's locks are not fair either: a background thread that releases and takes
the lock again before a waiting thread wakes could keep an API read waiting for seconds while a 10,000-item
``foreach`` runs. So while a foreground request waits, no background request takes the lock (for a while).

The lock is not enough: every runnable thread gets an equal share of the GIL, so behind a 10,000-item ``foreach``
(its item threads, the interpreter, the stream function) a ``GET /runs/{id}`` needing 50 ms of CPU took up to
2.6 s. In AWS the API's function has a CPU of its own. So while a foreground invocation is young, background work
pauses where it can safely wait (``ForegroundGate``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


# How long a background request gives way to foreground ones before it takes its turn regardless: many API
# requests at once (a console polling fifty runs) must not starve the runs they watch.
MAX_YIELD_SECONDS = 0.1
# How long a foreground invocation holds background work back: an answer needs well under a second of CPU; a
# long-poll (``?wait=``) waits on the run it holds back, and must not keep it waiting longer.
FOREGROUND_WINDOW_SECONDS = 1.0


class PriorityLock:
    """Shared for reads, exclusive for writes, foreground first. A thread already inside (a request made while
    serving another) enters again whatever it asks for."""

    def __init__(self, is_foreground: Callable[[], bool]) -> None:
        self._is_foreground = is_foreground
        self._state = threading.Condition(threading.Lock())
        self._writer: int | None = None
        self._holds: dict[int, int] = {}  # thread -> depth, for every thread inside
        self._foreground_waiting = 0
        self._overdue = 0  # background requests that have given way long enough

    def acquire(self, *, write: bool) -> None:
        me = threading.get_ident()
        with self._state:
            if me in self._holds:
                self._holds[me] += 1
                return
            if self._is_foreground():
                self._foreground_waiting += 1
                try:
                    self._state.wait_for(lambda: self._free_for(write) and not self._overdue)
                finally:
                    self._foreground_waiting -= 1
            else:
                self._wait_in_background(write)
            self._holds[me] = 1
            if write:
                self._writer = me

    def _wait_in_background(self, write: bool) -> None:
        """Wait for the lock, giving way to foreground requests for at most ``MAX_YIELD_SECONDS``; then this
        request is overdue, and foreground ones wait for it in turn."""
        deadline = time.monotonic() + MAX_YIELD_SECONDS
        overdue = False
        try:
            while not (self._free_for(write) and (overdue or not self._foreground_waiting)):
                if overdue:
                    self._state.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    overdue = True
                    self._overdue += 1
                    continue
                self._state.wait(left)
        finally:
            if overdue:
                self._overdue -= 1

    def release(self) -> None:
        me = threading.get_ident()
        with self._state:
            depth = self._holds.get(me)
            if depth is None:
                raise RuntimeError("release of a lock this thread does not hold")
            if depth > 1:
                self._holds[me] = depth - 1
                return
            del self._holds[me]
            if self._writer == me:
                self._writer = None
            self._state.notify_all()

    def _free_for(self, write: bool) -> bool:
        return self._writer is None and not (write and self._holds)

    def held_here(self) -> bool:
        """Whether this thread is inside the lock."""
        return threading.get_ident() in self._holds

    @property
    def foreground_waiting(self) -> int:
        """Foreground threads waiting for the lock now."""
        with self._state:
            return self._foreground_waiting


class ForegroundGate:
    """While a foreground invocation is in its first ``FOREGROUND_WINDOW_SECONDS``, a background thread that
    reaches ``give_way`` (its next AWS call, its execution's next state) waits, at most ``MAX_YIELD_SECONDS``
    each time: a stream of requests slows the runs, and never stops them. An invocation that sleeps (a
    long-poll between its reads) holds nothing back meanwhile, and a thread inside the DynamoDB lock never
    waits here (a foreground read may be waiting for it)."""

    def __init__(self, is_foreground: Callable[[], bool], holds_lock: Callable[[], bool]) -> None:
        self._is_foreground = is_foreground
        self._holds_lock = holds_lock
        self._state = threading.Condition(threading.Lock())
        self._windows: dict[int, float] = {}  # thread serving a foreground invocation -> the end of its window

    @contextlib.contextmanager
    def serving(self, foreground: bool) -> Iterator[None]:
        """Hold background work back while this thread runs the block (in its first moments), if
        ``foreground``."""
        if not foreground:
            yield
            return
        me = threading.get_ident()
        with self._state:
            self._windows[me] = time.monotonic() + FOREGROUND_WINDOW_SECONDS
        try:
            yield
        finally:
            with self._state:
                self._windows.pop(me, None)
                self._state.notify_all()

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """This thread waits for nothing the block does (it sleeps): its window, if any, is set aside."""
        me = threading.get_ident()
        if me not in self._windows:
            yield
            return
        with self._state:
            end = self._windows.pop(me)
            self._state.notify_all()
        try:
            yield
        finally:
            with self._state:
                self._windows[me] = end

    def give_way(self, **_: object) -> None:
        """Wait while a foreground invocation's window is open (botocore ``before-call`` handler, too)."""
        if not self._windows or self._is_foreground() or self._holds_lock():
            return
        deadline = time.monotonic() + MAX_YIELD_SECONDS
        with self._state:
            while self._windows:
                now = time.monotonic()
                until = min(max(self._windows.values()), deadline)
                if until <= now:
                    return
                self._state.wait(until - now)
