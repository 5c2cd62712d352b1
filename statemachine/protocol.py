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
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from statemachine import payload
from statemachine.errors import StepgraphError
from statemachine.jsonlimits import MAX_ERROR_MESSAGE, valid_text

if TYPE_CHECKING:
    from statemachine.spec import RetryPolicy

Mode = Literal["run", "plan", "batch", "item", "collect", "failed", "record", "lookup", "wait", "answer"]
ItemRetries = Literal["executor", "states"]

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


class ProtocolError(StepgraphError):
    """A request or node context that is not what a compiled state machine sends (a field missing or mistyped)."""


# The executor parses requests with these plain dataclasses, not pydantic: its cold start stays free of pydantic
# (about a third of it), which it loads only with a tool (tools declare pydantic models). Each field is checked
# as the pydantic models that preceded them checked it; unknown keys are ignored, as they were.
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(one, str) for one in value)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_CHECKS: dict[str, tuple[str, Any]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "str?": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "int": ("an integer", _is_int),
    "int?": ("an integer or null", lambda v: v is None or _is_int(v)),
    "bool": ("a boolean", lambda v: isinstance(v, bool)),
    "object": ("an object", lambda v: isinstance(v, Mapping)),
    "strings": ("a list of strings", _is_str_list),
    "any": ("anything", lambda v: True),
}


def _read(owner: str, raw: Any, kinds: Mapping[str, str], *, extra: bool = True) -> dict[str, Any]:
    """The fields of ``raw`` named in ``kinds``, each checked (``ProtocolError`` names the first bad one).

    Fields absent from ``raw`` are left out (the dataclass default applies; a required one fails there).
    """
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"{owner}: expected an object, got {_kind(raw)}")
    if not extra:
        unknown = sorted(str(k) for k in raw if k not in kinds)
        if unknown:
            raise ProtocolError(f"{owner}.{unknown[0]}: unknown field")
    out: dict[str, Any] = {}
    for name, kind in kinds.items():
        value = raw.get(name, MISSING)
        if value is MISSING:
            continue
        expected, check = _CHECKS[kind]
        if not check(value):
            raise ProtocolError(f"{owner}.{name}: expected {expected}, got {_kind(value)}")
        out[name] = dict(value) if kind == "object" else list(value) if kind == "strings" else value
    return out


def _build(cls: Any, owner: str, values: dict[str, Any]) -> Any:
    missing = [f.name for f in fields(cls) if f.name not in values and _required(f)]
    if missing:
        raise ProtocolError(f"{owner}.{missing[0]}: field required")
    return cls(**values)


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _dump(obj: Any) -> dict[str, Any]:
    """The fields of a dataclass that differ from their defaults, in declaration order (nested ones too)."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if default is not MISSING and value == default:
            continue
        out[f.name] = _dump(value) if hasattr(value, "__dataclass_fields__") else value
    return out


@dataclass(frozen=True)
class Retry:
    """A node's merged retry policy as the executor reads it (``spec.RetryPolicy``'s fields)."""

    max_attempts: int | None = None
    interval_seconds: int | None = None
    backoff_rate: float | None = None
    max_delay_seconds: int | None = None
    jitter: Literal["FULL", "NONE"] | None = None

    @classmethod
    def of(cls, policy: Retry | RetryPolicy | Mapping[str, Any]) -> Retry:
        """The policy of a spec (already validated), or one read from JSON (checked here)."""
        if isinstance(policy, Retry):
            return policy
        if not isinstance(policy, Mapping):
            return cls(**{f.name: getattr(policy, f.name) for f in fields(cls)})
        owner = "NodeContext.retry"
        values = _read(owner, policy, {f.name: "any" for f in fields(cls)}, extra=False)
        for name, least in (("max_attempts", 0), ("interval_seconds", 1), ("max_delay_seconds", 1)):
            value = values.get(name)
            if value is not None and not (_is_int(value) and value >= least):
                raise ProtocolError(f"{owner}.{name}: expected an integer >= {least} or null, got {value!r}")
        rate = values.get("backoff_rate")
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1.0:
                raise ProtocolError(f"{owner}.backoff_rate: expected a number >= 1.0 or null, got {rate!r}")
            values["backoff_rate"] = float(rate)
        if values.get("jitter") not in (None, "FULL", "NONE"):
            raise ProtocolError(f"{owner}.jitter: expected 'FULL', 'NONE' or null, got {values['jitter']!r}")
        return cls(**values)


_CONTEXT_KINDS = {
    "node": "str",
    "tool": "str",
    "params": "object",
    "timeout_seconds": "int",
    "optional": "bool",
    "foreach": "str?",
    "max_concurrency": "int?",
    "in_loop": "bool",
    "inline_paths": "strings",
    "doc_budget": "int?",
    "loop_counter": "str?",
    "resets": "strings",
    "clears": "strings",
    "batch_max": "int?",
    "cache_ttl": "int?",
}


@dataclass(kw_only=True)
class NodeContext:
    """Everything the executor needs to know about a node, fixed at compile time."""

    node: str
    tool: str
    params: dict[str, Any] = field(default_factory=dict)
    """The params template (edge ``map`` shorthands already merged in as references)."""
    retry: Retry
    """The merged policy; ``retry.max_attempts`` tells the executor whether a failure is final."""
    timeout_seconds: int
    optional: bool = False
    update_state: bool | dict[str, str] = False
    foreach: str | None = None
    """The reference (``{{ input.items }}``) to the list a ``foreach`` node runs over."""
    max_concurrency: int | None = None
    in_loop: bool = False
    """The node sits in a loop body: ``doc.loops[node]`` counts its runs (its iteration number)."""
    inline_paths: list[str] = field(default_factory=list)
    """Dotted paths inside this node's output that conditions or ``foreach`` read: keep them inline."""
    doc_budget: int | None = None
    """Bytes the document this node returns may take (offload more when over): a Parallel's result holds one
    document per branch, so the compiler divides the 256 KiB payload limit by the graph's widest join."""
    loop_counter: str | None = None
    """On a loop head: the ``doc.loops`` key counting the head's runs since its loop was entered (the Choice
    compares it with ``max_iterations``)."""
    resets: list[str] = field(default_factory=list)
    """On a loop head: the counters of the loops nested in its body, zeroed each time it runs."""
    clears: list[str] = field(default_factory=list)
    """A loop head's body nodes: their results are dropped when the head runs, so each iteration starts clean."""
    batch_max: int | None = None
    """On a ``foreach`` node: the most items one ``batch`` invocation may run (their worst case, every retry
    and timeout included, fits the executor's time limit)."""
    cache_ttl: int | None = None
    """``cache.ttl_seconds``: reuse an output of the same tool version and resolved params this recent."""
    item_retries: ItemRetries = "executor"
    """On a ``foreach`` node: who retries a failed item: the executor inside its batch, or Step Functions
    (the child Task's ``Retry``; then batches hold one item)."""

    def __post_init__(self) -> None:
        self.retry = Retry.of(self.retry)  # a spec's RetryPolicy (or its fields) becomes the executor's Retry

    def without_params(self) -> NodeContext:
        """This context with no params (the bookkeeping steps' copy)."""
        return replace(self, params={})

    def to_json(self) -> str:
        """Compact JSON of the fields that differ from their defaults, as embedded in the Task's payload."""
        from pydantic_core import to_json  # the compiler's side (it uses pydantic): the bytes it always wrote

        return to_json(_dump(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> NodeContext:
        """Parse the ``ctx`` string of a request (``ProtocolError`` names a missing or mistyped field)."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"NodeContext: not JSON: {exc}") from None
        values = _read("NodeContext", raw, _CONTEXT_KINDS)
        if "retry" in raw:
            values["retry"] = Retry.of(raw["retry"])
        if "update_state" in raw:
            update = raw["update_state"]
            if not (isinstance(update, bool) or _is_str_map(update)):
                expected = "a boolean or an object of strings"
                raise ProtocolError(f"NodeContext.update_state: expected {expected}, got {_kind(update)}")
            values["update_state"] = update if isinstance(update, bool) else dict(update)
        if "item_retries" in raw:
            values["item_retries"] = _one_of("NodeContext.item_retries", raw["item_retries"], get_args(ItemRetries))
        return _build(cls, "NodeContext", values)


def _one_of(owner: str, value: Any, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ProtocolError(f"{owner}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


@dataclass(frozen=True)
class Failure:
    """What Step Functions' ``Catch`` put in the document: the error name and its cause."""

    error: str = "States.TaskFailed"
    cause: str | None = None

    @classmethod
    def from_doc(cls, raw: Mapping[str, Any]) -> Failure:
        """``{"Error", "Cause"}`` (or ``error``/``cause``), other keys ignored."""
        values = {}
        for name, alias, kind in (("error", "Error", "str"), ("cause", "Cause", "str?")):
            key = alias if alias in raw else name
            values.update(_read("Failure", {name: raw[key]} if key in raw else {}, {name: kind}))
        return cls(**values)

    def message(self) -> str:
        """The error message: the Lambda ``errorMessage`` when the cause is a Lambda error document (valid
        Unicode and at most ``MAX_ERROR_MESSAGE`` characters: a function may raise any text)."""
        return valid_text(self._raw_message(), MAX_ERROR_MESSAGE)

    def _raw_message(self) -> str:
        if not self.cause:
            return self.error
        try:
            parsed = json.loads(self.cause)
        except (ValueError, RecursionError):
            return self.cause
        if isinstance(parsed, Mapping) and isinstance(parsed.get("errorMessage"), str):
            return str(parsed["errorMessage"])
        return self.cause


_REQUEST_KINDS = {
    "node": "str",
    "tool": "str",
    "ctx": "str",
    "doc": "object",
    "retry_count": "int",
    "execution": "str?",
    "item": "any",
    "index": "int?",
    "start": "int?",
    "size": "int?",
    "token": "str?",
}


@dataclass(kw_only=True)
class ExecutorRequest:
    """The payload of the executor Lambda (the Task's ``Parameters.Payload``)."""

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
    token: str | None = field(default=None, repr=False)
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
        return Failure.from_doc(raw) if isinstance(raw, Mapping) else None

    def for_item(self, item: Any, index: int, **changes: Any) -> ExecutorRequest:
        """This request as one ``foreach`` item's (``item`` mode)."""
        return replace(self, item=item, index=index, mode="item", **changes)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> ExecutorRequest:
        """Parse the Lambda event (``ProtocolError`` when it is not a request)."""
        values = _read("ExecutorRequest", event, _REQUEST_KINDS)
        if "mode" in event:
            values["mode"] = _one_of("ExecutorRequest.mode", event["mode"], get_args(Mode))
        return _build(cls, "ExecutorRequest", values)


def lambda_result(doc: Mapping[str, Any], node: str) -> tuple[Any, str | None, int]:
    """``(output, started, attempts)`` of a ``lambda:`` node from the document in ``record`` mode."""
    raw = (doc.get("results") or {}).get(node)
    if not isinstance(raw, Mapping) or "Payload" not in raw:
        return raw, None, 1
    started = raw.get("started")
    return raw["Payload"], started if isinstance(started, str) else None, int(raw.get("retry_count") or 0) + 1


@dataclass(frozen=True)
class BatchPlan:
    """What ``plan`` returns: the document, and the first index of each batch of ``size`` items."""

    doc: dict[str, Any]
    starts: list[int]
    size: int

    def to_dict(self) -> dict[str, Any]:
        """The Lambda's return value."""
        return {"doc": self.doc, "starts": list(self.starts), "size": self.size}


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
