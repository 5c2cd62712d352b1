"""One node invocation: resolve inputs, run the tool, record the attempt, return the new document.

:class:`NodeExecutor` takes its collaborators (records, offloader, tool registry, logger, metric sink)
injected so tests run the real path against moto. Each request names its mode (``statemachine.protocol``
describes them all; :meth:`NodeExecutor.handle` dispatches): ``run`` a plain node, ``plan``/``batch``/``item``/
``collect`` the steps of a ``foreach``, ``failed`` a caught failure, ``record`` after a ``lambda:`` node's
Task called the user's function, ``lookup`` a cached ``lambda:`` node's cache read.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import StoreError, ToolError
from functions.executor.binding import execution_problem, resumes_of
from functions.executor.cache import node_key
from functions.executor.errors import NodeFailed, node_failure
from functions.executor.failures import describe_error
from functions.executor.sandbox import ToolTimeout, run_tool
from functions.executor.tools._context import ToolContext
from functions.settings import get_settings
from functions.store.cache import NodeCache
from functions.store.offload import DOC_BUDGET, Offloader
from functions.store.records import ItemResult, Records, restartable
from functions.store.table import now_iso, store_iso
from statemachine import jsonlimits, payload, references
from statemachine.errors import DataError, JsonInputError, LimitError
from statemachine.protocol import (
    CACHE_DOC_KEY,
    ITEM_MARKER,
    BatchPlan,
    ExecutorRequest,
    NodeContext,
    ProtocolError,
    batch_size,
    batch_starts,
    lambda_result,
    service_errors,
)
from statemachine.status import NodeStatus

if TYPE_CHECKING:
    from functions.executor.tools.base import Tool
    from functions.store.cache import CachedOutput
    from functions.store.records import NodeRecord
    from statemachine.protocol import Retry

MAX_LOG_LINES = 200
"""LOG events kept per attempt; a tool that logs more gets one line saying how many were dropped."""
MAX_LOG_CHARS = 2000
TIMEOUT_GRACE_SECONDS = 0.5
"""Past the Task's timeout, Step Functions has moved on: the executor stops the tool and records the timeout."""

MAX_BATCHES = 10_000
"""Batches of one ``foreach`` run: their first indexes travel in the Map's input (256 KiB with the document)."""

T = TypeVar("T")


class ItemFailed(Exception):
    """A ``foreach`` item failed for good inside a batch; its failure is already recorded on the node."""


def retry_delay(policy: Retry, attempt: int) -> float:
    """Seconds before retry ``attempt + 1``, as Step Functions computes them (interval, backoff, cap, jitter)."""
    delay = float(policy.interval_seconds or 1) * float(policy.backoff_rate or 1.0) ** (attempt - 1)
    if policy.max_delay_seconds:
        delay = min(delay, float(policy.max_delay_seconds))
    if policy.jitter == "FULL":
        delay = random.uniform(0, delay)
    return delay


MetricSink = Callable[[str, str, float | Sequence[float], dict[str, str]], None]
"""``(name, unit, value or values, dimensions)``: where node metrics go (Powertools in the handler)."""
Span = Callable[[str], AbstractContextManager[Any]]
"""``span(name)``: a context manager timing one step (an X-Ray subsegment in the handler)."""


def _no_span(name: str) -> AbstractContextManager[Any]:
    return nullcontext()


class ToolSource(Protocol):
    def get(self, name: str) -> Tool: ...


def checked_output(tool: str, output: Any) -> Any:
    """``output`` when it can be stored, passed on and served whole (``jsonlimits``, nested at most
    ``MAX_OUTPUT_DEPTH``); otherwise the node fails with ``InvalidOutput`` saying what is wrong."""
    try:
        jsonlimits.check(output, "output", max_depth=jsonlimits.MAX_OUTPUT_DEPTH)
    except (LimitError, JsonInputError) as exc:
        raise ToolError(f"{tool}: {exc.message}", code="InvalidOutput") from None
    return output


def _ended_item(node: NodeRecord, fallback: str) -> dict[str, Any]:
    """The answer to an item whose node (or own record) has ended: the marker if it succeeded, else its error
    raised again (``fallback``: the message when none was recorded)."""
    if node.status == NodeStatus.SUCCEEDED:
        return dict(ITEM_MARKER)
    error = node.error or {"code": "stepgraph.NodeFailed", "message": fallback}
    raise node_failure(error["code"], error["message"])


def _no_metrics(name: str, unit: str, value: float | Sequence[float], dimensions: dict[str, str]) -> None:
    """Default metric sink: drop."""


@dataclass
class Invocation:
    """A parsed request and what follows from it."""

    request: ExecutorRequest
    ctx: NodeContext
    run_id: str
    iteration: int
    attempt: int
    starts: int | None = None
    """Attempts begun, as the start write returned it (saves a read when an attempt fails)."""
    received: float = field(default_factory=time.monotonic)
    """When the invocation arrived (``time.monotonic()``): the node's timeout counts from here."""
    resume: int = 0
    """Which execution of the run sent it: 0 the first, n the n-th resume (``doc.run.resumes``)."""

    @property
    def node(self) -> str:
        return self.ctx.node

    @property
    def key(self) -> tuple[str, str, int]:
        """``(run_id, node, iteration)``: which node record the invocation acts on."""
        return self.run_id, self.ctx.node, self.iteration

    @property
    def tool(self) -> str:
        return self.ctx.tool


class NodeExecutor:
    """Runs nodes for the state machine; one instance serves many invocations (thread-safe)."""

    def __init__(
        self,
        *,
        records: Records | None = None,
        offloader: Offloader | None = None,
        tools: ToolSource | None = None,
        logger: logging.Logger | Any | None = None,
        metric: MetricSink | None = None,
        span: Span | None = None,
        cache: NodeCache | None = None,
    ) -> None:
        self.records = records or Records()
        self._cache = cache
        self.offloader = offloader or Offloader()
        self._tools = tools
        self.log = logger or logging.getLogger(__name__)
        self.metric = metric or _no_metrics
        self.span = span or _no_span

    @property
    def tools(self) -> ToolSource:
        """Where tools are found (the built-in registry unless injected), loaded on first use: the bookkeeping
        steps never load a tool, nor pydantic, which the tools' models need."""
        if self._tools is None:
            from functions.executor.tools import registry

            self._tools = registry.default
        return self._tools

    @property
    def cache(self) -> NodeCache:
        """Where cached outputs are looked up (the records' table unless injected), made on first use."""
        if self._cache is None:
            self._cache = NodeCache(self.records.table)
        return self._cache

    # -- entry --------------------------------------------------------------------------------

    def parse(self, event: Mapping[str, Any]) -> Invocation:
        """The invocation an event asks for; ``stepgraph.InvalidRequest`` when it is not an executor request."""
        try:
            request = ExecutorRequest.from_event(event)
            ctx = request.context
            run_id = str(request.doc["run"]["run_id"])
        except (ProtocolError, KeyError, TypeError) as exc:
            raise node_failure("stepgraph.InvalidRequest", f"not an executor request: {exc}") from None
        problem = execution_problem(request.execution, request.doc.get("run"), get_settings().prefix)
        if problem:
            raise node_failure("stepgraph.InvalidRequest", f"refused: {problem}")
        resume = resumes_of(request.doc.get("run")) or 0
        return Invocation(request, ctx, run_id, payload.iteration(request.doc, ctx), request.attempt, resume=resume)

    def handle(self, inv: Invocation) -> Any:
        """Serve one parsed request in its mode."""
        mode = inv.request.mode
        if mode == "plan":
            return self.plan(inv)
        if mode == "batch":
            return self.run_batch(inv)
        if mode == "item":
            return self.run_item(inv)
        if mode == "collect":
            return self.collect(inv)
        if mode == "failed":
            return self.record_caught_failure(inv)
        if mode == "record":
            return self.record_lambda_result(inv)
        if mode == "lookup":
            return self.lookup(inv)
        if mode in ("wait", "answer"):  # a person's step (functions/executor/human.py)
            from functions.executor import human

            return human.serve(self, inv)
        return self.run_node(inv)

    # -- run ----------------------------------------------------------------------------------

    def run_node(self, inv: Invocation) -> dict[str, Any]:
        """Run the tool once for a plain node and return the document with its result."""
        outcome = self._guard(
            lambda: self.records.start_attempt(
                inv.run_id, inv.node, inv.iteration, inv.attempt, tool=inv.tool, resume=inv.resume
            )
        )
        if not outcome.started:
            self._refuse_stale(inv, outcome.node)
            replay = self._replay(inv, outcome.node)
            if replay is not None:
                return replay
        elif outcome.node is not None:
            inv.starts = outcome.node.starts
        try:
            scope = self._scope(inv)
        except Exception as exc:
            self._fail(inv, exc, 0)
        key = self._cache_key(inv, scope) if inv.ctx.cache_ttl else None
        found = self._cached(inv, key)
        reused = self._reuse(inv, found) if found is not None else None
        if reused is not None:
            return reused
        started = time.perf_counter()
        try:
            output = self._run_tool(inv, scope)
            tool_ms = int((time.perf_counter() - started) * 1000)
            slim = self.offloader.offload(inv.run_id, inv.node, inv.iteration, output, keep_inline=inv.ctx.inline_paths)
            doc = self._apply(inv, output, slim)
        except Exception as exc:
            self._fail(inv, exc, int((time.perf_counter() - started) * 1000))
        self._emit_success(inv, tool_ms)
        return self._succeed(inv, doc, inv.attempt, output=slim, tool_ms=tool_ms, cache_key=key)

    # -- cache --------------------------------------------------------------------------------

    def _cache_key(self, inv: Invocation, scope: dict[str, Any]) -> str | None:
        """The node's cache key for the params as resolved now; None when they do not resolve or parse (the
        call then fails or runs as it would uncached, and its output is not cached)."""
        try:
            params = references.resolve(inv.ctx.params, scope)
            tool = None if inv.tool.startswith("lambda:") else self.tools.get(inv.tool)
            return node_key(inv.tool, params, tool)
        except Exception as exc:
            self.log.info("no cache key: %s", exc)
            return None

    def _cached(self, inv: Invocation, key: str | None) -> CachedOutput | None:
        """The newest output of ``key`` within the node's ``ttl_seconds``: one read. A failing lookup is a miss."""
        if not key or not inv.ctx.cache_ttl:
            return None
        try:
            found = self.cache.lookup(key, inv.ctx.cache_ttl)
        except Exception:
            self.log.warning("cache lookup failed; running the tool", exc_info=True)
            return None
        self.metric("NodeCacheHits" if found is not None else "NodeCacheMisses", "Count", 1, {"tool": inv.tool})
        return found

    def _reuse(self, inv: Invocation, found: CachedOutput) -> dict[str, Any] | None:
        """Record the node SUCCEEDED with ``found``'s output (``cached``) and return the new document.

        Offloaded fields are references signed for the run that made them: they are read back and stored
        again under this run, which is never handed another run's reference. None (run the tool) when they
        cannot be read back any more.
        """
        try:
            output = self.offloader.resolve(found.output, found.run_id)
            slim = self.offloader.offload(inv.run_id, inv.node, inv.iteration, output, keep_inline=inv.ctx.inline_paths)
            doc = self._apply(inv, output, slim)
        except Exception:
            self.log.warning("cached output of %s unreadable; running the tool", found.run_id, exc_info=True)
            return None
        return self._succeed(inv, doc, inv.attempt, output=slim, cached_from=found.origin())

    def _reuse_recorded(self, inv: Invocation, found: CachedOutput) -> dict[str, Any] | None:
        """A ``lookup`` hit: mark the node started (its Task was never entered), then reuse ``found``."""
        outcome = self._guard(
            lambda: self.records.start_attempt(inv.run_id, inv.node, inv.iteration, 1, tool=inv.tool, resume=inv.resume)
        )
        if not outcome.started and outcome.node is not None and outcome.node.terminal:
            replay = self._replay(inv, outcome.node)
            if replay is not None:
                return replay
        return self._reuse(inv, found)

    def lookup(self, inv: Invocation) -> dict[str, Any]:
        """Before a cached ``lambda:`` node's Task: on a hit, the node is recorded and its document returned; on
        a miss, the document with the key at ``doc[CACHE_DOC_KEY][node]`` (the Choice after runs the function,
        ``record`` indexes its output under the key). A miss writes nothing.

        It never fails the run: anything going wrong here (the store, a param that does not resolve) is a miss,
        and the function's own Task, with its Retry and Catch, decides what happens next."""
        try:
            key = self._cache_key(inv, self._scope(inv))
        except Exception:
            self.log.warning("cache lookup: params unreadable; running the function", exc_info=True)
            key = None
        found = self._cached(inv, key)
        if found is not None:
            try:
                reused = self._reuse_recorded(inv, found)
            except NodeFailed:
                reused = None  # the store failed while recording the hit: the function runs and records instead
            if reused is not None:
                return reused
        doc = dict(inv.request.doc)
        doc[CACHE_DOC_KEY] = {**(doc.get(CACHE_DOC_KEY) or {}), inv.node: key or ""}
        return doc

    def _succeed(self, inv: Invocation, doc: dict[str, Any], attempt: int, **record: Any) -> dict[str, Any]:
        """Record the node SUCCEEDED and return ``doc``; if another delivery finished first, answer as it did."""
        outcome = self._guard(
            lambda: self.records.succeed_attempt(
                inv.run_id, inv.node, inv.iteration, attempt, resume=inv.resume, **record
            )
        )
        if not outcome:
            replay = self._replay(inv, outcome.node)
            if replay is not None:
                return replay
        return self._fit(inv, doc)

    def _refuse_stale(self, inv: Invocation, record: NodeRecord | None) -> None:
        """A delivery of an attempt older than the one recorded, or from an execution the run was resumed
        from: Step Functions no longer waits for it."""
        if record is not None and record.resume > inv.resume:
            raise node_failure(
                "stepgraph.StaleAttempt",
                f"{inv.node} belongs to the run's resume {record.resume}, not to resume {inv.resume}; not run",
            )
        if record is not None and not record.terminal and record.attempts > inv.attempt:
            raise node_failure(
                "stepgraph.StaleAttempt",
                f"attempt {inv.attempt} of {inv.node} arrived after attempt {record.attempts} started; not run",
            )

    def _replay(self, inv: Invocation, node: NodeRecord | None) -> dict[str, Any] | None:
        """The answer to a redelivered invocation from what is recorded, or None to run the tool (again)."""
        if node is None or not node.terminal:
            self.log.warning("redelivered attempt; running the tool again", extra={"recorded": node and node.status})
            return None
        if node.status == NodeStatus.SUCCEEDED:
            self.log.info("node already succeeded; returning the recorded output")
            if inv.ctx.update_state:  # the state keys it wrote come from the whole output, as when it ran
                return self._fit(inv, self._apply(inv, self.offloader.resolve(node.output, inv.run_id), node.output))
            return self._fit(inv, payload.apply_result(inv.request.doc, inv.ctx, node.output))
        error = node.error or {"code": "stepgraph.NodeFailed", "message": f"node {inv.node} is {node.status}"}
        raise node_failure(error["code"], error["message"])

    # -- foreach ------------------------------------------------------------------------------

    def run_item(self, inv: Invocation) -> dict[str, Any]:
        """Run the tool for one ``foreach`` item; its output is stored, the Map gets a small marker."""
        index = inv.request.index if inv.request.index is not None else 0
        # Only the first item marks the node started: items begin together, and one writer per
        # transition keeps stores without atomic conditions (moto under threads) from doubling the event.
        if index == 0:
            node = self._guard(lambda: self._ensure_started(inv))
        else:
            node = self._guard(lambda: self.records.get_node(inv.run_id, inv.node, inv.iteration))
        if node is not None and node.terminal:
            return _ended_item(node, f"node {inv.node} is {node.status}")
        outcome = self._guard(
            lambda: self.records.start_item(
                inv.run_id, inv.node, inv.iteration, index, inv.attempt, tool=inv.tool, resume=inv.resume
            )
        )
        if not outcome.started:
            self._refuse_stale(inv, outcome.node)
        elif outcome.node is not None:
            inv.starts = outcome.node.starts
        if not outcome.started and outcome.node is not None and outcome.node.terminal:
            return _ended_item(outcome.node, "item failed")
        key: str | None = None
        if inv.ctx.cache_ttl:
            reused, key = self._cached_item(inv, index, inv.request.item, inv.attempt)
            if reused is not None:
                output, origin = reused
                return self._item_succeeded(inv, index, output, cached_from=origin)
        started = time.perf_counter()
        try:
            output = self._run_tool(inv, self._scope(inv, with_item=True), index=index)
            tool_ms = int((time.perf_counter() - started) * 1000)
            slim = self.offloader.offload(inv.run_id, inv.node, inv.iteration, output, prefix=f"item{index:06d}")
        except Exception as exc:
            self._fail(inv, exc, int((time.perf_counter() - started) * 1000), index=index)
        self._emit_success(inv, tool_ms)
        return self._item_succeeded(inv, index, slim, tool_ms=tool_ms, cache_key=key)

    def _item_succeeded(self, inv: Invocation, index: int, output: Any, **made: Any) -> dict[str, Any]:
        """Record the item SUCCEEDED with ``output`` (``made``: its ``tool_ms`` and ``cache_key``, or the
        ``cached_from`` it was reused from) and answer the Map with the marker."""
        self._guard(
            lambda: self.records.succeed_item(
                inv.run_id, inv.node, inv.iteration, index, inv.attempt, output=output, resume=inv.resume, **made
            )
        )
        return dict(ITEM_MARKER)

    def _foreach_list(self, inv: Invocation) -> list[Any]:
        """The node's ``foreach`` list from the request's document, read back when it was offloaded.

        ``DataError`` when it is missing or not a list: a node error an ``optional`` node catches.
        """
        items = references.resolve(inv.ctx.foreach or "", payload.scope(inv.request.doc))
        if self.offloader.genuine(items, inv.run_id):
            items = self.offloader.store.get(items)
        if not isinstance(items, list):
            raise DataError(f"{inv.node}: foreach {inv.ctx.foreach} is {type(items).__name__}, not a list")
        return items

    def _items_total(self, inv: Invocation) -> int | None:
        """How many items the node's ``foreach`` list has in the request's document (None if unreadable)."""
        if not inv.ctx.foreach:
            return None
        try:
            return len(self._foreach_list(inv))
        except (DataError, references.ReferenceSyntaxError):
            return None

    def plan(self, inv: Invocation) -> dict[str, Any]:
        """Before the Map: mark the node started and split its list into batches (``protocol.BatchPlan``)."""
        try:
            items = self._foreach_list(inv)
        except (DataError, references.ReferenceSyntaxError) as exc:
            code, message = describe_error(exc, inv.tool)
            self._guard(
                lambda: self.records.fail_node(
                    inv.run_id,
                    inv.node,
                    inv.iteration,
                    tool=inv.tool,
                    error={"code": code, "message": message},
                    resume=inv.resume,
                )
            )
            raise node_failure(code, message) from None
        size = batch_size(len(items), inv.ctx.batch_max, inv.ctx.max_concurrency)
        starts = batch_starts(len(items), size)
        if len(starts) > MAX_BATCHES:
            message = f"{inv.node}: foreach over {len(items)} items needs {len(starts)} batches, over {MAX_BATCHES}"
            raise node_failure(DataError.code, message)
        node = self._guard(lambda: self._ensure_started(inv, total=len(items)))
        if node is not None and node.terminal and node.status != NodeStatus.SUCCEEDED:
            error = node.error or {"code": "stepgraph.NodeFailed", "message": f"node {inv.node} is {node.status}"}
            raise node_failure(error["code"], error["message"])
        return BatchPlan(doc=inv.request.doc, starts=starts, size=size).to_dict()

    def run_batch(self, inv: Invocation) -> dict[str, Any]:
        """One Map child: run the items ``start .. start + size - 1`` in order; their outputs go to the store."""
        start = inv.request.start or 0
        size = max(1, inv.request.size or 1)
        node = self._guard(lambda: self.records.get_node(inv.run_id, inv.node, inv.iteration))
        if node is not None and node.terminal:
            return dict(ITEM_MARKER)  # another item failed the node (collect reports it), or it is done
        try:
            items = self._foreach_list(inv)
        except (DataError, references.ReferenceSyntaxError) as exc:
            self._fail(inv, exc, 0, attempt=(inv.ctx.retry.max_attempts or 0) + 1)
        end = min(len(items), start + size)
        if inv.ctx.item_retries == "states":  # one item, one attempt: the child Task's Retry retries it
            request = inv.request.for_item(items[start], start)
            return self.run_item(Invocation(request, inv.ctx, inv.run_id, inv.iteration, inv.attempt))
        # A retried batch (its Lambda failed or timed out) resumes: items already finished are not run again;
        # so does a batch of a resumed run. The first delivery has nothing to resume, so its happy path reads nothing.
        recorded: dict[int, NodeRecord] = {}
        if inv.attempt > 1 or inv.resume:
            recorded = self._guard(
                lambda: self.records.items_between(inv.run_id, inv.node, inv.iteration, start, end - 1)
            )
        finished: list[ItemResult] = []
        done_before = sum(1 for r in recorded.values() if r.status == NodeStatus.SUCCEEDED)
        try:
            for index in range(start, end):
                record = recorded.get(index)
                if restartable(record, inv.resume):
                    record = None  # an execution the run was resumed from left it failed: it runs afresh
                if record is not None and record.status == NodeStatus.SUCCEEDED:
                    continue
                if record is not None and record.terminal:
                    break  # its failure failed the node already; collect reports it
                finished.append(self._run_batch_item(inv, index, items[index], record))
        except ItemFailed:
            # An item failed for good: the node is recorded FAILED with its error, which collect raises. The
            # batch itself ends normally, so the Task's Retry (kept for crashes of the batch) does not rerun it.
            pass
        finally:
            self._guard(
                lambda: self.records.put_succeeded_items(
                    inv.run_id, inv.node, inv.iteration, finished, resume=inv.resume
                )
            )
            ran = [r.tool_ms for r in finished if r.tool_ms is not None]  # items reused from the cache did not run
            if ran:  # one metric document for the batch's items
                self.metric("NodeDuration", "Milliseconds", ran, {"tool": inv.tool})
        done = done_before + len(finished)
        self._guard(lambda: self.records.count_batch(inv.run_id, inv.node, inv.iteration, start, done))
        return dict(ITEM_MARKER)

    def _start_item(self, inv: Invocation, index: int, attempt: int) -> None:
        self._guard(
            lambda: self.records.start_item(
                inv.run_id, inv.node, inv.iteration, index, attempt, tool=inv.tool, resume=inv.resume
            )
        )

    def _run_batch_item(self, inv: Invocation, index: int, value: Any, record: NodeRecord | None) -> ItemResult:
        """Run one item of a batch with the node's retry policy and timeout, as Step Functions would retry a Task."""
        policy = inv.ctx.retry
        attempt = record.attempts + 1 if record is not None else 1
        first_started = record.started_at if record is not None and record.started_at else now_iso()
        key: str | None = None
        if inv.ctx.cache_ttl:
            reused, key = self._cached_item(inv, index, value, attempt)
            if reused is not None:
                return ItemResult(
                    index=index,
                    attempt=attempt,
                    tool=inv.tool,
                    output=reused[0],
                    started_at=first_started,
                    finished_at=now_iso(),
                    tool_ms=None,
                    attempt_started_at=first_started,
                    cached_from=reused[1],
                )
        while True:
            request = inv.request.for_item(value, index, retry_count=attempt - 1)
            item_inv = Invocation(request, inv.ctx, inv.run_id, inv.iteration, attempt)
            attempt_at = now_iso()
            if attempt > 1:  # a retry is visible (RUNNING, attempt n) while it runs; first attempts are not written
                self._start_item(inv, index, attempt)
            started = time.perf_counter()
            try:
                output = self._run_tool(item_inv, self._scope(item_inv, with_item=True), index=index)
                tool_ms = int((time.perf_counter() - started) * 1000)
                slim = self.offloader.offload(inv.run_id, inv.node, inv.iteration, output, prefix=f"item{index:06d}")
            except Exception as exc:
                if attempt == 1:  # the failure is recorded on the item's record, which the first attempt skipped
                    self._start_item(inv, index, 1)
                try:
                    self._fail(item_inv, exc, int((time.perf_counter() - started) * 1000), index=index, attempt=attempt)
                except NodeFailed as failed:
                    if failed.code in service_errors(inv.tool):
                        raise  # the service was unavailable: Step Functions retries the batch, which resumes here
                    if attempt > (policy.max_attempts or 0):
                        raise ItemFailed(str(failed)) from None
                time.sleep(retry_delay(policy, attempt))
                attempt += 1
                continue
            return ItemResult(
                index=index,
                attempt=attempt,
                tool=inv.tool,
                output=slim,
                started_at=first_started,
                finished_at=now_iso(),
                tool_ms=tool_ms,
                attempt_started_at=attempt_at,
                cache_key=key,
            )

    def _cached_item(
        self, inv: Invocation, index: int, value: Any, attempt: int
    ) -> tuple[tuple[Any, dict[str, Any]] | None, str | None]:
        """A cached ``foreach`` item: ``((output as this run stores it, origin) or None, key)``, one read.

        Its params are resolved with the item, as the tool would get them; a miss leaves the key for its success.
        """
        request = inv.request.for_item(value, index)
        item_inv = Invocation(request, inv.ctx, inv.run_id, inv.iteration, attempt)
        try:
            key = self._cache_key(item_inv, self._scope(item_inv, with_item=True))
        except Exception:
            self.log.warning("cache: item %s params unreadable; running the tool", index, exc_info=True)
            return None, None
        found = self._cached(item_inv, key)
        if found is None:
            return None, key
        try:
            output = self.offloader.resolve(found.output, found.run_id)
            slim = self.offloader.offload(inv.run_id, inv.node, inv.iteration, output, prefix=f"item{index:06d}")
        except Exception:
            self.log.warning("cached output of %s unreadable; running the tool", found.run_id, exc_info=True)
            return None, key
        return (slim, found.origin()), key

    def _ensure_started(self, inv: Invocation, total: int | None = None) -> NodeRecord | None:
        """Mark a ``foreach`` node RUNNING once (its plan); the recorded node when it was already."""
        outcome = self.records.start_attempt(
            inv.run_id,
            inv.node,
            inv.iteration,
            1,
            tool=inv.tool,
            items_total=total if total is not None else self._items_total(inv),
            resume=inv.resume,
        )
        return None if outcome.started else outcome.node

    def collect(self, inv: Invocation) -> dict[str, Any]:
        """After the Map: the item outputs in index order become the node's output."""
        node = self._guard(lambda: self._ensure_started(inv))
        if node is not None and node.terminal:
            replay = self._replay(inv, node)
            if replay is not None:
                return replay
        expected = self._items_total(inv)
        if expected is None and node is not None:
            expected = node.items_total
        items = self._guard(lambda: self.records.list_items(inv.run_id, inv.node, inv.iteration))
        done = [item for item in items if item.status == NodeStatus.SUCCEEDED]
        if expected is None:
            expected = len(done)
        if len(done) != expected or any(item.index != i for i, item in enumerate(done)):
            raise node_failure(
                "stepgraph.ItemsMissing",
                f"{inv.node}: {len(done)} of {expected} foreach items have a recorded output",
            )
        outputs = [item.output for item in done]
        attempt = max([item.attempts for item in done] + [node.attempts if node else 1])
        self._guard(lambda: self.records.set_items_done(inv.run_id, inv.node, inv.iteration, len(done)))
        try:
            slim = self.offloader.offload(inv.run_id, inv.node, inv.iteration, outputs, prefix="items")
            doc = self._apply(inv, outputs, slim)
        except Exception as exc:
            self._fail(inv, exc, 0, attempt=attempt)
        reused = sum(1 for item in done if item.cached)
        counted = f", {reused} from the cache" if reused else ""
        return self._succeed(
            inv,
            doc,
            attempt,
            output=slim,
            message=f"{inv.node} succeeded ({len(outputs)} items{counted})",
            items_cached=reused if inv.ctx.cache_ttl else None,
            cached=bool(outputs) and reused == len(outputs),
        )

    # -- optional node failed -----------------------------------------------------------------

    def record_caught_failure(self, inv: Invocation) -> dict[str, Any]:
        """An ``optional`` node's failure was caught: make sure it is recorded, then go on with a null output."""
        failure = inv.request.failure
        code = jsonlimits.valid_text(failure.error) if failure else "States.TaskFailed"
        message = failure.message() if failure else "the node failed"
        self._guard(
            lambda: self.records.fail_node(
                inv.run_id,
                inv.node,
                inv.iteration,
                tool=inv.tool,
                error={"code": code, "message": message},
                message=f"{inv.node} failed (optional, the run goes on): {code}: {message}",
                resume=inv.resume,
            )
        )
        return self._fit(inv, payload.apply_failure(inv.request.doc, inv.ctx))

    # -- lambda: nodes ------------------------------------------------------------------------

    def record_lambda_result(self, inv: Invocation) -> dict[str, Any]:
        """A ``lambda:`` node's Task invoked the user's function: record its output like a tool's."""
        output, entered, attempts = lambda_result(inv.request.doc, inv.node)
        started = store_iso(entered)
        outcome = self._guard(
            lambda: self.records.start_attempt(
                inv.run_id, inv.node, inv.iteration, 1, tool=inv.tool, at=started, resume=inv.resume
            )
        )
        if not outcome.started and outcome.node is not None and outcome.node.terminal:
            replay = self._replay(inv, outcome.node)
            if replay is not None:
                return replay
        try:
            checked_output(inv.tool, output)
            slim = self.offloader.offload(inv.run_id, inv.node, inv.iteration, output, keep_inline=inv.ctx.inline_paths)
            doc = self._apply(inv, output, slim)
        except Exception as exc:
            self._fail(inv, exc, 0, attempt=attempts)
        key = (inv.request.doc.get(CACHE_DOC_KEY) or {}).get(inv.node) if inv.ctx.cache_ttl else None
        return self._succeed(inv, doc, attempts, output=slim, cache_key=key if isinstance(key, str) else None)

    # -- pieces -------------------------------------------------------------------------------

    def _scope(self, inv: Invocation, *, with_item: bool = False) -> dict[str, Any]:
        """What params resolve against, with the offloaded values on the referenced paths read back."""
        scope = payload.scope(inv.request.doc, inv.request.item, with_item=with_item)
        cache: dict[str, Any] = {}
        for _, _, template in references.iter_references(inv.ctx.params):
            for path in template.paths:
                self._materialize(scope, path.doc_parts(), cache, inv.run_id)
        return scope

    def _materialize(
        self, scope: dict[str, Any], parts: tuple[str | int, ...], cache: dict[str, Any], run_id: str
    ) -> None:
        """Replace references along ``parts`` (and everywhere under its end) by their values, copying as it goes."""
        parent: Any = scope
        for depth, part in enumerate(parts):
            try:
                child = parent[part]
            except (KeyError, IndexError, TypeError):
                return  # references.resolve raises the precise error
            if self.offloader.genuine(child, run_id):
                key = repr(sorted(child["$stepgraph_ref"].items()))
                if key not in cache:
                    cache[key] = self.offloader.store.get(child)
                child = cache[key]
            if depth == len(parts) - 1:
                parent[part] = self.offloader.resolve(child, run_id)
                return
            if isinstance(child, dict):
                child = dict(child)
            elif isinstance(child, list):
                child = list(child)
            else:
                parent[part] = child
                return
            parent[part] = child
            parent = child

    def _run_tool(self, inv: Invocation, scope: dict[str, Any], *, index: int | None = None) -> Any:
        params = references.resolve(inv.ctx.params, scope)
        tool = self.tools.get(inv.tool)
        context = ToolContext(
            run_id=inv.run_id,
            node=inv.node,
            iteration=inv.iteration,
            attempt=inv.attempt,
            log=self._tool_log(inv, index),
        )
        deadline = inv.received + inv.ctx.timeout_seconds + TIMEOUT_GRACE_SECONDS
        with self.span(f"## tool {inv.tool}"):
            try:
                return checked_output(inv.tool, run_tool(tool, params, context, deadline))
            except ToolTimeout:
                seconds = inv.ctx.timeout_seconds
                unit = "second" if seconds == 1 else "seconds"
                raise ToolTimeout(f"{inv.tool} did not finish within the node's timeout of {seconds} {unit}") from None

    def _tool_log(self, inv: Invocation, index: int | None) -> Callable[[str], None]:
        """``ctx.log`` for the tool: each line is a ``LOG`` event (once per line, even when redelivered)."""
        count = 0
        where = f"{index:06d}" if index is not None else "-"

        def log(message: str) -> None:
            nonlocal count
            count += 1
            self.log.info(str(message)[:MAX_LOG_CHARS], extra={"tool_log": True, "item": index})
            if count > MAX_LOG_LINES + 1:
                return
            text = str(message)[:MAX_LOG_CHARS]
            if count == MAX_LOG_LINES + 1:
                text = f"more than {MAX_LOG_LINES} log lines; the rest are in the function's logs only"
            key = f"LOG#{inv.node}#{inv.iteration:04d}#{where}#{inv.attempt}#{count}"
            try:
                self.records.put_event(
                    inv.run_id,
                    "LOG",
                    node=inv.node,
                    attempt=inv.attempt,
                    iteration=inv.iteration,
                    message=text,
                    key=key,
                )
            except Exception:
                self.log.warning("could not record a LOG event", exc_info=True)

        return log

    def _apply(self, inv: Invocation, output: Any, slim: Any) -> dict[str, Any]:
        """The new document; ``update_state`` paths are read from the full output, stored values stay referenced."""
        rule = inv.ctx.update_state
        if not isinstance(rule, dict) or slim is output:
            return payload.apply_result(inv.request.doc, inv.ctx, slim)
        doc = payload.apply_result(inv.request.doc, inv.ctx, output)
        updates = payload.state_updates(inv.ctx, output)
        stored = self.offloader.offload(inv.run_id, inv.node, inv.iteration, updates, prefix="state")
        doc["results"] = {**doc["results"], inv.node: slim}
        doc["state"] = {**doc["state"], **stored}
        doc["sd"] = {**doc.get("sd", {}), **stored}
        return doc

    def _fit(self, inv: Invocation, doc: dict[str, Any]) -> dict[str, Any]:
        """The document, made to fit the node's budget (the compiler's ``doc_budget``, else the default)."""
        budget = inv.ctx.doc_budget or DOC_BUDGET
        return self.offloader.fit_document(inv.run_id, inv.node, inv.iteration, doc, budget)

    def _fail(
        self,
        inv: Invocation,
        exc: BaseException,
        tool_ms: int,
        *,
        index: int | None = None,
        attempt: int | None = None,
    ) -> NoReturn:
        """Record a failed attempt, emit metrics, log the traceback, and raise the failure named by its code."""
        code, message = describe_error(exc, inv.tool)
        max_attempts = inv.ctx.retry.max_attempts or 0
        if code in service_errors(inv.tool):
            attempt = inv.attempt if attempt is None else attempt
            final = False
        elif attempt is None:
            attempt = inv.attempt
            final = self._attempts_made(inv, index) > max_attempts
        else:
            final = attempt > max_attempts
        error = {"code": code, "message": message}
        self.log.error(
            "node attempt failed",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"error_code": code, "final": final, "item": index},
        )
        self.metric("NodeFailures", "Count", 1, {"tool": inv.tool})
        self.metric("NodeDuration", "Milliseconds", tool_ms, {"tool": inv.tool})
        try:
            if index is None:
                self.records.fail_attempt(
                    inv.run_id, inv.node, inv.iteration, attempt, error=error, final=final, resume=inv.resume
                )
            else:
                self.records.fail_item(
                    inv.run_id, inv.node, inv.iteration, index, attempt, error=error, final=final, resume=inv.resume
                )
                if final:
                    self._ensure_started(inv)
                    self.records.fail_attempt(
                        inv.run_id,
                        inv.node,
                        inv.iteration,
                        attempt,
                        error=error,
                        final=True,
                        message=f"{inv.node} failed: item {index} (attempt {attempt}): {code}: {message}",
                        resume=inv.resume,
                    )
        except Exception:
            self.log.exception("could not record the failed attempt")
        raise node_failure(code, message) from None

    def _attempts_made(self, inv: Invocation, index: int | None) -> int:
        """How many attempts of this node (or item) the executor began, this one included.

        The node's Retry counts exactly these; ``$$.State.RetryCount`` also counts invokes Lambda
        refused (``Lambda.TooManyRequestsException``...), retried by the service rule, which never ran.
        The start write returned the count; it is read only when that write did not happen here.
        """
        if inv.starts:
            return inv.starts
        try:
            if index is None:
                record = self.records.get_node(inv.run_id, inv.node, inv.iteration)
            else:
                record = self.records.get_item(inv.run_id, inv.node, inv.iteration, index)
        except Exception:
            self.log.exception("could not read the attempts made; counting Step Functions' retries")
            return inv.attempt
        return record.starts if record is not None and record.starts else inv.attempt

    def _emit_success(self, inv: Invocation, tool_ms: int) -> None:
        self.metric("NodeDuration", "Milliseconds", tool_ms, {"tool": inv.tool})

    def _guard(self, call: Callable[[], T]) -> T:
        """Run a store call; its failure becomes ``stepgraph.StoreError`` (retried by the node's policy)."""
        try:
            return call()
        except (StoreError, ClientError, BotoCoreError) as exc:
            self.log.exception("store call failed")
            code, message = describe_error(exc, "")
            raise node_failure(code, message) from None
