"""The local cloud's DynamoDB lock (local/priority.py): writes alone, reads together, API requests first."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING

from local import priority
from local.priority import ForegroundGate, PriorityLock

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


def _gate(monkeypatch: pytest.MonkeyPatch, *, max_yield: float = 10.0, window: float = 1.0) -> ForegroundGate:
    """A gate whose background work gives way for ``max_yield`` seconds, to requests in their first ``window``."""
    monkeypatch.setattr(priority, "MAX_YIELD_SECONDS", max_yield)
    monkeypatch.setattr(priority, "FOREGROUND_WINDOW_SECONDS", window)
    return ForegroundGate(lambda: getattr(foreground, "is_api", False), lambda: getattr(foreground, "locked", False))


def _give_way_in_thread(
    gate: ForegroundGate, passed: list[str], name: str, *, locked: bool = False
) -> threading.Thread:
    def run() -> None:
        foreground.locked = locked
        gate.give_way()
        passed.append(name)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_background_work_waits_while_an_api_request_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an API request being served
    gate = _gate(monkeypatch)
    passed: list[str] = []
    with gate.serving(True):
        # WHEN background work reaches the gate, and so do the API request itself and a thread inside the lock
        foreground.is_api = True
        gate.give_way()
        passed.append("api")
        foreground.is_api = False
        locked = _give_way_in_thread(gate, passed, "locked", locked=True)
        locked.join(5)
        waiting = _give_way_in_thread(gate, passed, "background")
        waiting.join(0.2)
        # THEN only the background work waits
        assert passed == ["api", "locked"]
    # AND it goes on as soon as the request has been answered
    waiting.join(5)
    assert passed == ["api", "locked", "background"]


def test_background_work_passes_the_gate_when_nothing_foreground_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a gate with no request being served, and one whose served block is not foreground
    gate = _gate(monkeypatch)
    passed: list[str] = []
    with gate.serving(False):
        # WHEN background work reaches it
        _give_way_in_thread(gate, passed, "background").join(5)
    # THEN it does not wait
    assert passed == ["background"]


def test_background_work_waits_a_bounded_time_for_a_long_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an API request served for longer than background work gives way (a long-poll, say)
    gate = _gate(monkeypatch, max_yield=0.05)
    passed: list[str] = []
    with gate.serving(True):
        # WHEN background work reaches the gate three times meanwhile
        def run() -> None:
            for i in range(3):
                gate.give_way()
                passed.append(f"step-{i}")

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(5)
        # THEN it has gone on each time while the request is still being served
        assert passed == ["step-0", "step-1", "step-2"]


def test_a_request_holds_background_work_back_only_in_its_first_moments(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an API request served past its window (a long-poll waiting on the run it would hold back)
    gate = _gate(monkeypatch, window=0.05)
    passed: list[str] = []
    with gate.serving(True):
        time.sleep(0.1)
        # WHEN background work reaches the gate
        _give_way_in_thread(gate, passed, "background").join(5)
        # THEN it goes on while the request is still being served
        assert passed == ["background"]


def test_a_request_that_sleeps_holds_nothing_back_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an API request being served, that sleeps between two reads (a long-poll)
    gate = _gate(monkeypatch)
    passed: list[str] = []
    with gate.serving(True):
        # WHEN background work reaches the gate while it sleeps, then again once it is awake
        with gate.idle():
            _give_way_in_thread(gate, passed, "while asleep").join(5)
        awake = _give_way_in_thread(gate, passed, "while awake")
        awake.join(0.2)
        # THEN it went on while the request slept, and waits again while it runs
        assert passed == ["while asleep"]
    awake.join(5)
    assert passed == ["while asleep", "while awake"]
