"""The local cloud's DynamoDB lock (local/priority.py): writes alone, reads together, API requests first."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

from local import priority
from local.priority import PriorityLock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pytest

foreground = threading.local()


def _lock() -> PriorityLock:
    return PriorityLock(lambda: getattr(foreground, "is_api", False))


@contextlib.contextmanager
def held(lock: PriorityLock, *, write: bool) -> Iterator[None]:
    lock.acquire(write=write)
    try:
        yield
    finally:
        lock.release()


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_waiting_api_request_goes_before_background_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a background write holding the lock, eight background writes waiting, then an API request waiting
    monkeypatch.setattr(priority, "MAX_YIELD_SECONDS", 10.0)
    lock = _lock()
    order: list[str] = []
    release = threading.Event()

    def holder() -> None:
        with held(lock, write=True):
            release.wait(5)

    def waiter(name: str, api: bool) -> None:
        foreground.is_api = api
        with held(lock, write=True):
            order.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    _wait_until(lambda: bool(lock._holds))
    for i in range(8):
        threads.append(threading.Thread(target=waiter, args=(f"background-{i}", False)))
        threads[-1].start()
    time.sleep(0.05)
    threads.append(threading.Thread(target=waiter, args=("api", True)))
    threads[-1].start()
    _wait_until(lambda: lock.foreground_waiting == 1)
    # WHEN the holder lets go
    release.set()
    for thread in threads:
        thread.join(5)
    # THEN the API request went first, and every background write still got the lock after it
    assert order[0] == "api"
    assert sorted(order[1:]) == [f"background-{i}" for i in range(8)]


def test_reads_share_the_lock_and_a_write_waits_for_them() -> None:
    # GIVEN a background read holding the lock (a long Query)
    lock = _lock()
    events: list[str] = []
    release = threading.Event()

    def long_read() -> None:
        with held(lock, write=False):
            events.append("long read in")
            release.wait(5)
            events.append("long read out")

    def writer() -> None:
        with held(lock, write=True):
            events.append("write")

    reader = threading.Thread(target=long_read)
    reader.start()
    _wait_until(lambda: events == ["long read in"])
    write = threading.Thread(target=writer)
    write.start()
    time.sleep(0.05)
    # WHEN an API read comes while it still reads and a write waits
    foreground.is_api = True
    try:
        with held(lock, write=False):
            events.append("api read")
    finally:
        foreground.is_api = False
    release.set()
    reader.join(5)
    write.join(5)
    # THEN the API read ran alongside the long read, and the write waited for both
    assert events == ["long read in", "api read", "long read out", "write"]


def test_a_thread_inside_enters_again_and_others_wait_for_its_outer_hold() -> None:
    # GIVEN a thread holding the lock twice over (a request made while serving another)
    lock = _lock()
    inside: list[int] = []

    def other() -> None:
        with held(lock, write=True):
            inside.append(2)

    with held(lock, write=True):
        with held(lock, write=False):
            inside.append(1)
        # WHEN another thread asks for it while the first still holds it once
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.1)
        # THEN it waits until the outer hold ends
        assert inside == [1]
    thread.join(5)
    assert inside == [1, 2]


def test_a_stream_of_api_requests_does_not_starve_background_work() -> None:
    # GIVEN API reads that keep the lock busy, one after another and overlapping, for two seconds
    lock = _lock()
    stop = time.monotonic() + 2.0

    def api_reads() -> None:
        foreground.is_api = True
        while time.monotonic() < stop:
            with held(lock, write=False):
                time.sleep(0.005)

    readers = [threading.Thread(target=api_reads) for _ in range(4)]
    for reader in readers:
        reader.start()
    time.sleep(0.05)
    # WHEN a background write asks for the lock meanwhile
    asked = time.monotonic()
    with held(lock, write=True):
        waited = time.monotonic() - asked
    for reader in readers:
        reader.join(5)
    # THEN it gets it after giving way for a while, not once they have all stopped
    assert waited < 1.0
