"""The node executor Lambda: Powertools Logger, Tracer and Metrics around :class:`NodeExecutor`.

Step Functions invokes it for each Task state with an ``ExecutorRequest`` payload. On success it returns
the new run document (or a marker for a ``foreach`` item); on failure it raises an exception whose class
name is the error code, so Lambda's ``errorType`` is what ``Retry``/``Catch`` match. Tracebacks go to
the logs only.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from functions.executor.node import NodeExecutor
from functions.settings import Settings, get_settings
from functions.tracing import make_tracer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractContextManager

    from aws_lambda_powertools.utilities.typing import LambdaContext

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "stepgraph"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "stepgraph"

logger = Logger(service=SERVICE)
# Patch only botocore (the store's calls): auto-patching every supported library would import httpx,
# requests and sqlite3 at cold start (about 100 ms) for tools that may never run. With tracing off, the
# X-Ray SDK is not even imported.
tracer = make_tracer(SERVICE, patch_modules=("botocore",))
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

# Node metrics go out through ``single_metric`` (own dimensions per tool), so the decorator's shared set is
# empty by design; its flush would warn on every cold start.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

_lock = threading.Lock()
_executor: NodeExecutor | None = None
_built_for: Settings | None = None


def emit_metric(name: str, unit: str, value: float | Sequence[float], dimensions: dict[str, str]) -> None:
    """One EMF metric with its own dimensions, in a metrics object of its own (invocations overlap locally).

    Several values (a ``foreach`` batch's item durations) go in one document (EMF keeps up to 100 values per
    metric; Powertools starts another document past that), not one log line per value.
    """
    values = [value] if isinstance(value, int | float) else list(value)
    if not values:
        return
    metric = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    for key, dimension in dimensions.items():
        metric.add_dimension(name=key, value=dimension)
    for one in values:
        metric.add_metric(name=name, unit=MetricUnit(unit), value=one)
    metric.flush_metrics()


def trace_span(name: str) -> AbstractContextManager[Any]:
    """An X-Ray subsegment around one step (the tool's run), so traces show tool time apart from store calls."""
    return tracer.provider.in_subsegment(name=name)


def get_executor() -> NodeExecutor:
    """The executor of this process, created on first use (no AWS client at import time).

    It is made again when the settings were re-read (``get_settings.cache_clear()``: a new local cloud or
    table), unless one was injected with :func:`set_executor`.
    """
    global _executor, _built_for
    settings = get_settings()
    executor = _executor
    if executor is None or (_built_for is not None and _built_for is not settings):
        with _lock:
            if _executor is None or (_built_for is not None and _built_for is not settings):
                _executor = NodeExecutor(logger=logger, metric=emit_metric, span=trace_span)
                _built_for = settings
            executor = _executor
    return executor


def set_executor(executor: NodeExecutor | None) -> None:
    """Use ``executor`` for the next invocations (tests inject one bound to their table); None resets."""
    global _executor, _built_for
    with _lock:
        _executor = executor
        _built_for = None


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    executor = get_executor()
    inv = executor.parse(event)
    logger.thread_safe_append_keys(
        run_id=inv.run_id,
        node=inv.node,
        attempt=inv.attempt,
        iteration=inv.iteration,
        tool=inv.tool,
        mode=inv.request.mode,
        execution=inv.request.execution,
    )
    tracer.put_annotation("run_id", inv.run_id)
    tracer.put_annotation("node", inv.node)
    tracer.put_annotation("tool", inv.tool)
    try:
        return executor.handle(inv)
    finally:
        logger.thread_safe_clear_keys()
