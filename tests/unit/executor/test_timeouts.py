"""Timeouts stop the work: a tool past its node's timeout stops using CPU, and no thread is left running."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from functions.executor import sandbox
from functions.executor.errors import NodeFailed

from .helpers import RUN, invoke, request

if TYPE_CHECKING:
    from functions.store.records import Records

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

# Each ``[*].[@, @][]`` doubles the list: 22 of them take minutes of CPU.
EXPONENTIAL = " | ".join(["[*].[@, @][]"] * 22)
TICKS = os.sysconf("SC_CLK_TCK")


def children() -> dict[int, float]:
    """CPU seconds used so far by each live child process of this one (Linux /proc)."""
    found: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return found


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of its live children."""
    return time.process_time() + sum(children().values())


def test_an_exponential_transform_stops_using_cpu_once_its_node_times_out(records: Records) -> None:
    # GIVEN a transform whose expression would take minutes, on a node with a 1 second timeout
    event = request("blowup", "transform", {"value": [1], "expression": EXPONENTIAL}, timeout_seconds=1)
    threads_before = threading.active_count()

    # WHEN the executor runs it
    started = time.monotonic()
    with pytest.raises(NodeFailed) as raised:
        invoke(event)
    waited = time.monotonic() - started

    # THEN the attempt fails as a timeout (raised as stepgraph.Timeout: a function may not raise States.*)
    # within a second of the node's timeout, and is recorded as Step Functions names it
    assert type(raised.value).__name__ == "stepgraph.Timeout"
    assert waited < 1 + 3  # timeout + grace, then recording the failure (slow on a loaded machine)
    node = records.get_node(RUN, "blowup", 1)
    assert node is not None and node.status == "FAILED" and node.error is not None
    assert node.error["code"] == "States.Timeout"
    # AND the process is idle again: no CPU time is spent on the abandoned work, and no thread is left behind
    before = cpu_seconds()
    time.sleep(2)
    assert cpu_seconds() - before < 0.5
    assert threading.active_count() <= threads_before


def test_a_cpu_bound_tool_runs_in_a_reused_worker_and_keeps_its_errors(records: Records) -> None:
    # GIVEN two transform nodes, the second with an expression that fails on the data
    pool = sandbox.pool()
    first = invoke(request("t1", "transform", {"value": [3, 1, 2], "expression": "sort(@)"}))
    started = pool.started

    # WHEN they run THEN the output comes back, the error keeps its code, and no new worker was started
    assert first["results"]["t1"] == {"result": [1, 2, 3]}
    with pytest.raises(NodeFailed) as raised:
        invoke(request("t2", "transform", {"value": "text", "expression": "sort(@)"}))
    assert type(raised.value).__name__ == "ExpressionError"
    assert pool.started == started


def test_util_sleep_past_its_timeout_returns_at_the_deadline(records: Records) -> None:
    # GIVEN util.sleep for 30 s on a node with a 1 second timeout
    event = request("nap", "util.sleep", {"seconds": 30}, timeout_seconds=1)

    # WHEN it runs THEN it fails as a timeout after about a second, with no thread left sleeping
    started = time.monotonic()
    with pytest.raises(NodeFailed) as raised:
        invoke(event)
    assert type(raised.value).__name__ == "stepgraph.Timeout"
    assert time.monotonic() - started < 1 + 3  # not the 30 s asked for
    assert not [t for t in threading.enumerate() if t.name.startswith("tool-")]
