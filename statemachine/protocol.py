"""What the compiled state machine sends the node executor, and what it expects back.

Each Task's ``Parameters.Payload`` is an :class:`ExecutorRequest`. ``ctx`` is the JSON string of a
:class:`NodeContext`: a string so that user params whose keys end in ``.$`` are never evaluated by
Step Functions. ``mode`` says which of the node's steps runs:

- ``run``: run the tool once with resolved params; return ``payload.apply_result(doc, ctx, output)``.
- ``plan``: before a ``foreach`` node's Map: resolve its list (inline or offloaded), mark the node started
  with ``items_total``, and return a :class:`BatchPlan` (``{"doc", "starts", "size"}``): the Map runs one
  child per batch of ``size`` consecutive items, so neither the list nor the history grows with the items.
- ``batch``: one Map child (``start``, ``size`` set; ``doc`` is the document at the Map): run the tool for
  each item of ``list[start:start + size]`` in order, with the node's retry policy and timeout applied per
  item, store each item's output (``ITEM#`` records), return a small marker (the Map discards it).
  With ``ctx.item_retries == "states"`` a batch holds one item and runs one attempt: Step Functions'
  ``Retry`` on the child Task retries it (items whose worst case would not fit one executor invocation).
- ``item``: one ``foreach`` item given whole (``item``, ``index`` set): as ``batch`` for one item and
  one attempt. Kept for requests compiled before batches.
- ``collect``: after the Map: read the item outputs in index order, build the node's output list (offload
  if large) and return ``payload.apply_result(doc, ctx, outputs)``; if an item failed for good, raise
  the error recorded for the node.
- ``failed``: an ``optional`` node failed (the tool's error or one Step Functions raised, e.g.
  ``States.Timeout``); ``doc["failure"]`` holds Step Functions' ``{"Error", "Cause"}``. Record the node
  FAILED with that code and message unless already recorded, return ``payload.apply_failure(doc, ctx)``.
  For a ``lambda:`` node that is not optional the Task discards the return value and the run fails with
  the function's own error.
- ``lookup``: before a cached ``lambda:`` node's Task (``ctx`` carries the params): resolve the params as the
  Task will and look the output up in the cache. A hit records the node SUCCEEDED (``cached``) and returns
  ``payload.apply_result(doc, ctx, output)``; a miss returns the document with the cache key at
  ``doc[CACHE_DOC_KEY][node]``, which the Choice after it tests and ``record`` uses.
- ``record``: after a ``lambda:<name>`` node's Task invoked the user's function directly,
  ``doc["results"][node]`` is ``{"Payload": output, "started": <ISO time the Task was entered>,
  "retry_count": n}``: record the node SUCCEEDED (attempts ``n + 1``), offload, and return
  ``payload.apply_result(doc, ctx, output)`` (see :func:`lambda_result`).
- ``wait``: a person's step (``human.*``): its ``.waitForTaskToken`` Task invoked the executor with ``token``
  (``$$.Task.Token``): keep the token where only the respond route reads it, resolve the prompt and record
  the node ``WAITING`` (``NODE_WAITING``). The return value is ignored: the Task waits for SendTaskSuccess.
- ``answer``: after that Task, ``doc["results"][node]`` is the answer the respond route sent: record the
  node SUCCEEDED with it and return ``payload.apply_result(doc, ctx, answer)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from statemachine import payload
from statemachine.spec import RetryPolicy  # noqa: TC001 (pydantic needs it at runtime)

Mode = Literal["run", "plan", "batch", "item", "collect", "failed", "record", "lookup", "wait", "answer"]

CACHE_DOC_KEY = payload.CACHE_KEYS
"""Document key where a cached ``lambda:`` node's ``lookup`` leaves its cache key on a miss (``{node: key}``):
the Choice after it runs the function when the key is there, and ``record`` (or ``failed``) removes it."""

_TOOL_SERVICE_ERRORS: dict[str, tuple[str, ...]] = {
    "llm.converse": (
        "Bedrock.ThrottlingException",
        "Bedrock.ServiceUnavailableException",
        "Bedrock.ModelNotReadyException",
        "Bedrock.InternalServerException",
    ),
}
TOOL_SERVICE_RETRY: dict[str, Any] = {
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "JitterStrategy": "FULL",
}
"""How a Task retries its tool's transient service errors (throttling...), apart from the node's own policy."""


def service_errors(tool: str) -> tuple[str, ...]:
    """Transient errors of the AWS service a tool calls: retried natively by :data:`TOOL_SERVICE_RETRY`.

    The executor never records them as a node's final failure: Step Functions keeps retrying, and when it
    gives up the run's settlement (or the optional node's ``failed`` step) records the failure.
    """
    return _TOOL_SERVICE_ERRORS.get(tool, ())


class NodeContext(BaseModel):
    """Everything the executor needs to know about a node, fixed at compile time."""

    model_config = ConfigDict(extra="ignore")

    node: str
    tool: str
    params: dict[str, Any] = Field(default_factory=dict)
    """The params template (edge ``map`` shorthands already merged in as references)."""
    retry: RetryPolicy
    """The merged policy; ``retry.max_attempts`` tells the executor whether a failure is final."""
    timeout_seconds: int
    optional: bool = False
    update_state: bool | dict[str, str] = False
    foreach: str | None = None
    """The reference (``{{ input.items }}``) to the list a ``foreach`` node runs over."""
    max_concurrency: int | None = None
    in_loop: bool = False
    """The node sits in a loop body: ``doc.loops[node]`` counts its runs (its iteration number)."""
    inline_paths: list[str] = Field(default_factory=list)
    """Dotted paths inside this node's output that conditions or ``foreach`` read: keep them inline."""
    doc_budget: int | None = None
    """Bytes the document this node returns may take (offload more when over): a Parallel's result holds one
    document per branch, so the compiler divides the 256 KiB payload limit by the graph's widest join."""
    loop_counter: str | None = None
    """On a loop head: the ``doc.loops`` key counting the head's runs since its loop was entered (the Choice
    compares it with ``max_iterations``)."""
    resets: list[str] = Field(default_factory=list)
    """On a loop head: the counters of the loops nested in its body, zeroed each time it runs."""
    clears: list[str] = Field(default_factory=list)
    """A loop head's body nodes: their results are dropped when the head runs, so each iteration starts clean."""
    batch_max: int | None = None
    """On a ``foreach`` node: the most items one ``batch`` invocation may run (their worst case, every retry
    and timeout included, fits the executor's time limit)."""
    cache_ttl: int | None = None
    """``cache.ttl_seconds``: reuse an output of the same tool version and resolved params this recent."""
    item_retries: Literal["executor", "states"] = "executor"
    """On a ``foreach`` node: who retries a failed item: the executor inside its batch, or Step Functions
    (the child Task's ``Retry``; then batches hold one item)."""

    def to_json(self) -> str:
        """Compact JSON, as embedded in the Task's payload."""
        return self.model_dump_json(exclude_defaults=True)

    @classmethod
    def from_json(cls, text: str) -> NodeContext:
        """Parse the ``ctx`` string of a request."""
        return cls.model_validate_json(text)


class Failure(BaseModel):
    """What Step Functions' ``Catch`` put in the document: the error name and its cause."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    error: str = Field(default="States.TaskFailed", alias="Error")
    cause: str | None = Field(default=None, alias="Cause")

    def message(self) -> str:
        """The error message: the Lambda ``errorMessage`` when the cause is a Lambda error document."""
        if not self.cause:
            return self.error
        try:
            parsed = json.loads(self.cause)
        except ValueError:
            return self.cause
        if isinstance(parsed, Mapping) and isinstance(parsed.get("errorMessage"), str):
            return str(parsed["errorMessage"])
        return self.cause


class ExecutorRequest(BaseModel):
    """The payload of the executor Lambda (the Task's ``Parameters.Payload``)."""

    model_config = ConfigDict(extra="ignore")

    node: str
    tool: str
    ctx: str
    doc: dict[str, Any]
    mode: Mode = "run"
    retry_count: int = 0
    execution: str | None = None
    item: Any = None
    index: int | None = None
    start: int | None = None
    """``batch`` mode: the index of the batch's first item."""
    size: int | None = None
    """``batch`` mode: how many items a batch holds (the last one may hold fewer)."""
    token: str | None = Field(default=None, repr=False)
    """``wait`` mode: the Task's callback token (``$$.Task.Token``); never logged nor returned."""

    @property
    def context(self) -> NodeContext:
        """The parsed :class:`NodeContext`."""
        return NodeContext.from_json(self.ctx)

    @property
    def attempt(self) -> int:
        """1 for the first attempt, as a node record counts them."""
        return self.retry_count + 1

    @property
    def failure(self) -> Failure | None:
        """The caught error in ``failed`` mode."""
        raw = self.doc.get("failure")
        return Failure.model_validate(raw) if isinstance(raw, Mapping) else None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ExecutorRequest:
        """Parse the Lambda event (raises pydantic.ValidationError when it is not a request)."""
        return cls.model_validate(event)


def lambda_result(doc: Mapping[str, Any], node: str) -> tuple[Any, str | None, int]:
    """``(output, started, attempts)`` of a ``lambda:`` node from the document in ``record`` mode."""
    raw = (doc.get("results") or {}).get(node)
    if not isinstance(raw, Mapping) or "Payload" not in raw:
        return raw, None, 1
    started = raw.get("started")
    return raw["Payload"], started if isinstance(started, str) else None, int(raw.get("retry_count") or 0) + 1


class BatchPlan(BaseModel):
    """What ``plan`` returns: the document, and the first index of each batch of ``size`` items."""

    doc: dict[str, Any]
    starts: list[int]
    size: int


BATCHES_PER_LANE = 2
"""A list is cut into at least this many batches per Map lane (``max_concurrency``), so the lanes share it."""


def batch_size(total: int, batch_max: int | None, lanes: int | None) -> int:
    """Items per batch of a ``foreach`` over ``total`` items: spread over the Map's lanes, at most ``batch_max``
    (as many as their worst case fits one executor invocation). The executor's ``plan`` and the plan of a
    graph (:mod:`statemachine.plan`) both count batches with it."""
    spread = max(1, lanes or 1) * BATCHES_PER_LANE
    return max(1, min(batch_max or 1, -(-total // spread)))


def batch_starts(total: int, size: int) -> list[int]:
    """The first index of each batch of ``size`` items over ``total`` items."""
    return list(range(0, total, max(1, size)))


ITEM_MARKER: dict[str, Any] = {"ok": True}
"""What an ``item`` invocation returns; the Map discards it."""
