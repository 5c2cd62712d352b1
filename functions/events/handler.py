"""EventBridge "Step Functions Execution Status Change" → the run's terminal status and one ``RUN_*`` event.

Idempotent: ``functions.runs_sync.settle`` writes conditionally, so a duplicate or late delivery (or a
race with the API's reconciliation) writes nothing new. Events of executions that are not stepgraph runs
(no run item under the execution's name) are ignored. A resumed run's execution is named
``<run_id>-r<n>``; settle ignores a status of any execution but the run's current one.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from functions import runs_sync
from functions.errors import NotFoundError
from functions.executor.binding import run_of_execution
from functions.settings import get_settings
from functions.store.graphs import GraphStore
from functions.store.runs import RunStore
from statemachine.status import RUN_FAILED, ExecutionStatus

logger = Logger(service="stepgraph-events")
DETAIL_TYPE = "Step Functions Execution Status Change"
RUNS_FAILED = "RunsFailed"
"""The metric the stack's failed-runs alarm watches: one per run that ended FAILED or TIMED_OUT."""


def _count_failed_run(status: str) -> None:
    """One ``RunsFailed`` (EMF, dimensions service and stack): counted on every delivery of the event, since
    the API may have recorded the status first; EventBridge rarely delivers an event twice."""
    with single_metric(
        name=RUNS_FAILED,
        unit=MetricUnit.Count,
        value=1,
        namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "stepgraph",
        default_dimensions={"service": os.environ.get("POWERTOOLS_SERVICE_NAME") or "stepgraph"},
    ) as metric:
        metric.add_dimension(name="stack", value=get_settings().prefix)
        metric.add_metadata(key="status", value=status)


class Handler:
    """The events function with its stores and Step Functions client (injected or made on first use)."""

    def __init__(self, *, table: Any = None, sfn: Any = None) -> None:
        self._table = table
        self._sfn = sfn
        self._lock = threading.Lock()

    @property
    def sfn(self) -> Any:
        with self._lock:
            if self._sfn is None:
                self._sfn = boto3.client("stepfunctions", region_name=get_settings().region)
            return self._sfn

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if event.get("detail-type") != DETAIL_TYPE or not isinstance(event.get("detail"), dict):
            return {"settled": False, "reason": "not a Step Functions status change"}
        detail = event["detail"]
        run_id, _ = run_of_execution(str(detail.get("name") or ""))
        status = str(detail.get("status") or "")
        if status not in runs_sync.RUN_STATUS:
            return {"settled": False, "run_id": run_id, "reason": f"status {status} is not terminal"}
        runs, graphs = RunStore(self._table), GraphStore(self._table)
        try:
            run = runs.get(run_id)
        except NotFoundError:
            logger.info("execution is not a stepgraph run", extra={"execution": detail.get("executionArn")})
            return {"settled": False, "run_id": run_id, "reason": "unknown run"}
        try:
            nodes = graphs.node_ids(run.graph_id, run.version)
        except NotFoundError:
            nodes = []
        if status in RUN_FAILED:
            _count_failed_run(status)
        output = detail.get("output")
        if status == ExecutionStatus.SUCCEEDED and output is None:  # too large for the event: ask Step Functions
            output = self.sfn.describe_execution(executionArn=detail["executionArn"]).get("output")
        changed = runs_sync.settle(
            runs,
            run_id,
            status,
            error=detail.get("error"),
            cause=detail.get("cause"),
            stop_date=detail.get("stopDate"),
            output=output,
            execution_arn=str(detail.get("executionArn") or run.execution_arn),
            sfn=self.sfn,
            spec_nodes=nodes,
        )
        logger.info("run settled" if changed else "run was already settled", extra={"run_id": run_id, "status": status})
        return {"settled": changed, "run_id": run_id, "status": runs_sync.RUN_STATUS[status]}


_default: Handler | None = None


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _default
    if _default is None:
        _default = Handler()
    return _default(event, context)
