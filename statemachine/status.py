"""The status vocabulary of runs and nodes, in one place: the API, the store, the events function and the CLI
all read these (DESIGN.md's response shapes). The sets hold plain strings, as stored and sent."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's status: RUNNING until its execution ends."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


class NodeStatus(StrEnum):
    """A node's status in a run; WAITING is a person's step waiting for an answer (the run stays RUNNING)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"


class ExecutionStatus(StrEnum):
    """A Step Functions execution's status (DescribeExecution, the status-change event): not a run's, which
    ``functions.runs_sync.RUN_STATUS`` derives from it (an ABORTED execution is a CANCELLED run)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"


RUN_TERMINAL: tuple[str, ...] = tuple(
    s.value for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT)
)
"""A run in one of these has ended (until a resume)."""
RUN_RESUMABLE: tuple[str, ...] = tuple(s.value for s in (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT))
"""A run that ended without succeeding: ``POST /runs/{id}/resume`` continues it."""
RUN_FAILED: tuple[str, ...] = (RunStatus.FAILED.value, RunStatus.TIMED_OUT.value)
"""Ended in failure (the RunsFailed metric counts these)."""
NODE_TERMINAL: tuple[str, ...] = tuple(
    s.value for s in (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED)
)
"""A node in one of these is done (its record is never written again, but by a resume)."""
EXECUTION_TERMINAL: tuple[str, ...] = tuple(
    s.value
    for s in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED)
)
"""A Step Functions execution in one of these has ended."""
