"""A run's terminal status from its Step Functions execution: one function for the events Lambda and the API.

The status-change event (``functions.events``) and the API's reconciliation of a RUNNING run
(``DescribeExecution``) both call :func:`settle`. It writes, each idempotently: nodes still RUNNING as
FAILED with the error Step Functions gave them (from the execution history, e.g. ``States.Timeout``) or
CANCELLED; on success the nodes that never ran as SKIPPED; then the run's terminal status together with
its ``RUN_*`` event, conditional on the run still being RUNNING. Nodes first, so a reader who sees the
terminal run also sees settled nodes.

Given the execution that ended, settle acts for it only while it is the run's current execution: a
resumed run (``POST /runs/{id}/resume``) runs on as ``<run_id>-r<n>``, and a late status of an earlier
execution must neither close the run nor touch the nodes the newer execution runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.executor.binding import run_of_execution
from functions.store.events import RUN_EVENT
from functions.store.records import Records
from functions.store.table import iso, now_iso
from statemachine.jsonlimits import valid_text
from statemachine.protocol import Failure
from statemachine.status import RUN_FAILED, ExecutionStatus, NodeStatus, RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_stepfunctions.client import SFNClient

    from functions.store.runs import RunStore

# Step Functions execution status → run status (RUNNING and PENDING_REDRIVE are not terminal here).
RUN_STATUS: dict[str, str] = {
    ExecutionStatus.SUCCEEDED: RunStatus.SUCCEEDED,
    ExecutionStatus.FAILED: RunStatus.FAILED,
    ExecutionStatus.ABORTED: RunStatus.CANCELLED,
    ExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}
_FAILURE_EVENTS = {
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "LambdaFunctionFailed": "lambdaFunctionFailedEventDetails",
    "LambdaFunctionTimedOut": "lambdaFunctionTimedOutEventDetails",
    "TaskStartFailed": "taskStartFailedEventDetails",
    "TaskSubmitFailed": "taskSubmitFailedEventDetails",
    # A state that failed before any Task ran (e.g. a Map whose ItemsPath is missing) fails the execution.
    "ExecutionFailed": "executionFailedEventDetails",
}
MAX_HISTORY_PAGES = 20


def sfn_time(value: Any) -> str | None:
    """A Step Functions time (datetime, or epoch milliseconds in events) as stored."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, int | float) and value > 0:
        return iso(datetime.fromtimestamp(value / 1000, UTC))
    return None


def error_of(error: str | None, cause: str | None) -> dict[str, str]:
    """``{"code", "message"}`` from Step Functions' error and cause (a Lambda cause is JSON with errorMessage)."""
    code = valid_text(error or "States.Runtime")
    return {"code": code, "message": Failure(code, cause).message() or code}


def node_errors(sfn: SFNClient, execution_arn: str) -> dict[str, dict[str, str]]:
    """The last Step Functions failure of each state (node) in an execution's history."""
    events: dict[int, Any] = {}
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000, "includeExecutionData": False}
    try:
        for _ in range(MAX_HISTORY_PAGES):
            page = sfn.get_execution_history(**kwargs)
            for raw in page.get("events", []):
                events[int(raw["id"])] = dict(raw)
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    except ClientError:
        return {}
    found: dict[str, dict[str, str]] = {}
    for event_id in sorted(events):
        event: dict[str, Any] = events[event_id]
        details_key = _FAILURE_EVENTS.get(str(event.get("type")))
        if details_key is None:
            continue
        details: dict[str, Any] = event.get(details_key) or {}
        state = _state_of(events, event)
        if state:
            found[state] = error_of(details.get("error"), details.get("cause"))
    return found


def _state_of(events: dict[int, dict[str, Any]], event: dict[str, Any]) -> str | None:
    """The state an event belongs to: follow ``previousEventId`` back to its ``*StateEntered`` event."""
    current: dict[str, Any] | None = event
    for _ in range(50):
        if current is None:
            return None
        entered = current.get("stateEnteredEventDetails")
        if entered and str(current.get("type", "")).endswith("StateEntered"):
            return str(entered.get("name"))
        previous = current.get("previousEventId")
        current = events.get(int(previous)) if previous else None
    return None


def settle(
    runs: RunStore,
    run_id: str,
    sfn_status: str,
    *,
    error: str | None = None,
    cause: str | None = None,
    stop_date: Any = None,
    output: Any = None,
    execution_arn: str | None = None,
    sfn: SFNClient | None = None,
    spec_nodes: list[str] | None = None,
) -> bool:
    """Record the terminal status of a run's execution; True when this call made the change.

    ``output`` is the execution's output (JSON text or the document); ``spec_nodes`` the graph's node
    ids, used with the output to mark nodes that never ran as SKIPPED when the run succeeded.
    """
    status = RUN_STATUS.get(sfn_status)
    if status is None:
        return False
    at = sfn_time(stop_date) or now_iso()
    doc = _doc(output)
    run_error: dict[str, str] | None = None
    if status == RunStatus.FAILED:
        run_error = error_of(error, cause)
    elif status == RunStatus.TIMED_OUT:
        run_error = {"code": "States.Timeout", "message": cause or "the execution timed out"}
    records = Records(runs.table)
    if status == RunStatus.SUCCEEDED:
        if spec_nodes and isinstance(doc, dict) and isinstance(doc.get("results"), dict):
            for node in spec_nodes:
                if node not in doc["results"]:
                    records.skip_node(run_id, node, at=at)
    else:
        by_node = node_errors(sfn, execution_arn) if (sfn and execution_arn and status == RunStatus.FAILED) else {}
        node_status = NodeStatus.FAILED if status in RUN_FAILED else NodeStatus.CANCELLED
        records.end_running_nodes(
            run_id,
            node_status,
            at,
            errors=by_node,
            default_error=run_error if node_status == NodeStatus.FAILED else None,
            resume=run_of_execution(execution_arn.rsplit(":", 1)[-1])[1] if execution_arn else None,
        )
        for node, node_error in by_node.items():  # its state failed before its tool ever ran
            if node in (spec_nodes or []):
                records.fail_unstarted(run_id, node, error=node_error, at=at)
    state = doc.get("state") if isinstance(doc, dict) else None
    return runs.finish(run_id, status, error=run_error, state=state, finished_at=at, execution_arn=execution_arn)


def _doc(output: Any) -> Any:
    if isinstance(output, str):
        try:
            return json.loads(output)
        except ValueError:
            return None
    return output


def reconcile(
    runs: RunStore,
    sfn: SFNClient,
    run_id: str,
    execution_arn: str,
    spec_nodes: Callable[[], list[str]],
    *,
    start_lapsed: Callable[[], bool] | None = None,
) -> bool:
    """Ask Step Functions about a RUNNING run's execution and settle the run if it has ended; True when it has
    (settled by this call or already). ``spec_nodes`` gives the graph's node ids: only an ended run reads them.
    An execution Step Functions does not know, once ``start_lapsed`` says its start can no longer be under way,
    never started (the request starting it ended first): the run is settled FAILED, ``StartExecutionFailed``."""
    try:
        described = sfn.describe_execution(executionArn=execution_arn)
    except ClientError as exc:
        if exc.response["Error"].get("Code") != "ExecutionDoesNotExist" or start_lapsed is None or not start_lapsed():
            return False
        cause = "the execution was never started: the request starting it ended before StartExecution"
        settle(runs, run_id, "FAILED", error="StartExecutionFailed", cause=cause, execution_arn=execution_arn)
        return True
    status = str(described.get("status"))
    if status not in RUN_STATUS:
        return False
    settle(
        runs,
        run_id,
        status,
        error=described.get("error"),
        cause=described.get("cause"),
        stop_date=described.get("stopDate"),
        output=described.get("output"),
        execution_arn=execution_arn,
        sfn=sfn,
        spec_nodes=spec_nodes(),
    )
    return True


__all__ = ["RUN_EVENT", "RUN_STATUS", "error_of", "node_errors", "reconcile", "settle", "sfn_time"]
