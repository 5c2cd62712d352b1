"""The plan of a graph: what a run costs and how close it comes to AWS's limits, without running it.

Pure: the plan is read off the compiled definition (itself a pure function of the spec), so it follows
whatever shape the compiler emits. Each state is priced as AWS Step Functions (standard workflows)
records it: transitions are states entered (retries included), history events are the events
``GetExecutionHistory`` lists. ``min`` is the cheapest successful run (conditions skipping what they can,
loops taken once, no retries); ``max`` the costliest (every branch taken, loops run to their bound,
every retry of the node's policy spent, a caught failure where that costs more).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from statemachine.errors import LimitError
from statemachine.protocol import batch_size
from statemachine.spec import EXECUTOR_TIMEOUT_SECONDS

if TYPE_CHECKING:
    from collections.abc import Iterable

# ---- AWS's limits --------------------------------------------------------------------------------------

MAX_DEFINITION_BYTES = 1_048_576
"""CreateStateMachine refuses a larger definition."""
MAX_HISTORY_EVENTS = 25_000
"""A standard execution fails when its history reaches 25,000 events."""

# ---- prices: one place, with their date -----------------------------------------------------------------

PRICES_AS_OF = "2025-01 (us-east-1 list prices, no free tier)"
STANDARD_TRANSITION_USD = 0.025 / 1000
"""Step Functions standard workflows: $0.025 per 1,000 state transitions."""
EXPRESS_REQUEST_USD = 1.00 / 1_000_000
"""Step Functions express workflows: $1.00 per million executions."""
EXPRESS_GB_SECOND_USD = 0.00001667
"""Step Functions express workflows: duration, per GB-second (64 MB billed per execution)."""
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
"""AWS Lambda: $0.20 per million requests."""
LAMBDA_ARM_GB_SECOND_USD = 0.0000133334
"""AWS Lambda on arm64: duration, per GB-second."""

# ---- what the plan assumes --------------------------------------------------------------------------------

EXECUTOR_MEMORY_MB = 1024
"""The executor Lambda's ``MemorySize`` in template.yaml (a test keeps the two equal)."""
USER_FUNCTION_MEMORY_MB = 128
"""A user's own ``lambda:`` function, whose size the plan cannot know."""
FOREACH_ITEMS = 10
"""Items per ``foreach`` list: lists are run input, unknown until a run starts."""
MIN_CALL_SECONDS = 0.1
EXPRESS_MEMORY_GB = 0.064

_EVENTS = {"Task": 5, "Pass": 2, "Choice": 2, "Succeed": 2, "Wait": 2, "Fail": 1, "Parallel": 4, "Map": 4}
"""History events of one pass through a state (Task: entered, scheduled, started, succeeded, exited)."""
RETRY_EVENTS = 3
"""A retried Task attempt adds scheduled, started and failed (or timed out)."""
EXECUTION_EVENTS = 2
"""ExecutionStarted and ExecutionSucceeded (or Failed)."""
DISTRIBUTED_MAP_EVENTS = 2
"""A distributed Map adds MapRunStarted and MapRunSucceeded; its items' events are in child executions."""
INLINE_ITEM_EVENTS = 2
"""An inline Map adds MapIterationStarted and MapIterationSucceeded per item."""


@dataclass(frozen=True)
class Tally:
    """Counts along one path: transitions, Lambda invocations, history events, Lambda GB-seconds."""

    transitions: int = 0
    invocations: int = 0
    events: int = 0
    gb_seconds: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.transitions + other.transitions,
            self.invocations + other.invocations,
            self.events + other.events,
            self.gb_seconds + other.gb_seconds,
        )

    def times(self, n: int) -> Tally:
        return Tally(self.transitions * n, self.invocations * n, self.events * n, self.gb_seconds * n)


def _lowest(tallies: Iterable[Tally]) -> Tally:
    ts = list(tallies)
    return Tally(
        min(t.transitions for t in ts),
        min(t.invocations for t in ts),
        min(t.events for t in ts),
        min(t.gb_seconds for t in ts),
    )


def _highest(tallies: Iterable[Tally]) -> Tally:
    ts = list(tallies)
    return Tally(
        max(t.transitions for t in ts),
        max(t.invocations for t in ts),
        max(t.events for t in ts),
        max(t.gb_seconds for t in ts),
    )


@dataclass(frozen=True)
class Span:
    """The cheapest and the costliest way through part of a definition."""

    lo: Tally = field(default_factory=Tally)
    hi: Tally = field(default_factory=Tally)

    def __add__(self, other: Span) -> Span:
        return Span(self.lo + other.lo, self.hi + other.hi)


ZERO = Span()


@dataclass(frozen=True)
class Plan:
    """What DESIGN.md's ``plan`` shows: counts as ``{min, max}``, the worst case's history, the cost."""

    states: int
    definition_bytes: int
    transitions: tuple[int, int]
    lambda_invocations: tuple[int, int]
    history_events_max: int
    estimated_cost_usd: tuple[float, float]
    assumptions: list[str]
    workflow_type: str = "STANDARD"

    def to_dict(self) -> dict[str, Any]:
        """The JSON the API returns."""
        return {
            "states": self.states,
            "definition_bytes": self.definition_bytes,
            "transitions": {"min": self.transitions[0], "max": self.transitions[1]},
            "lambda_invocations": {"min": self.lambda_invocations[0], "max": self.lambda_invocations[1]},
            "history_events_max": self.history_events_max,
            "estimated_cost_usd": {"min": self.estimated_cost_usd[0], "max": self.estimated_cost_usd[1]},
            "assumptions": list(self.assumptions),
        }

    def problems(self) -> list[dict[str, Any]]:
        """AWS limits the worst case breaks, as validation details (empty when it can run)."""
        out: list[dict[str, Any]] = []
        if self.definition_bytes > MAX_DEFINITION_BYTES:
            out.append(
                {
                    "loc": "plan.definition_bytes",
                    "message": f"the compiled definition is {self.definition_bytes:,} bytes, over Step Functions' "
                    f"{MAX_DEFINITION_BYTES:,}-byte definition limit (limit: definition size); use fewer or "
                    "smaller nodes",
                }
            )
        if self.workflow_type == "STANDARD" and self.history_events_max > MAX_HISTORY_EVENTS:
            out.append(
                {
                    "loc": "plan.history_events_max",
                    "message": f"a run may record {self.history_events_max:,} history events, over Step Functions' "
                    f"{MAX_HISTORY_EVENTS:,} history events per execution (limit: history events); lower "
                    "max_iterations or split the graph",
                }
            )
        return out

    def check(self) -> None:
        """Raise a 422 :class:`LimitError` naming each AWS limit the graph's worst case would break."""
        problems = self.problems()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise LimitError(f"the graph cannot run on AWS: {problems[0]['message']}{more}", problems)


def plan_of(definition: dict[str, Any], *, workflow_type: str = "STANDARD", foreach_items: int = FOREACH_ITEMS) -> Plan:
    """The plan of a compiled definition (``definition_bytes`` as ``compiler.definition_json`` encodes it)."""
    size = len(json.dumps(definition, separators=(",", ":")).encode())
    span = _Scope(definition, foreach_items).span()
    lo, hi = span.lo, span.hi
    states = _count_states(definition)
    if workflow_type == "EXPRESS":

        def cost(t: Tally) -> float:
            duration = t.gb_seconds / (EXECUTOR_MEMORY_MB / 1024) * EXPRESS_MEMORY_GB
            return EXPRESS_REQUEST_USD + duration * EXPRESS_GB_SECOND_USD + _lambda_cost(t)
    else:

        def cost(t: Tally) -> float:
            return t.transitions * STANDARD_TRANSITION_USD + _lambda_cost(t)

    return Plan(
        states=states,
        definition_bytes=size,
        transitions=(lo.transitions, hi.transitions),
        lambda_invocations=(lo.invocations, hi.invocations),
        history_events_max=EXECUTION_EVENTS + hi.events,
        estimated_cost_usd=(_round(cost(lo)), _round(cost(hi))),
        assumptions=[
            f"foreach lists of {foreach_items} items",
            "max: loops run to their max_iterations, every branch runs, every retry of a node's policy is spent; "
            "min: conditions skip what they can, loops run once, no retries",
            "Lambda service errors (throttling) are not retried",
            f"each Lambda call takes {MIN_CALL_SECONDS:g} s (min) to its Task's timeout (max); the executor has "
            f"{EXECUTOR_MEMORY_MB} MB, your own functions {USER_FUNCTION_MEMORY_MB} MB (arm64)",
            f"prices: {PRICES_AS_OF}",
        ],
        workflow_type=workflow_type,
    )


def _lambda_cost(t: Tally) -> float:
    return t.invocations * LAMBDA_REQUEST_USD + t.gb_seconds * LAMBDA_ARM_GB_SECOND_USD


def _round(usd: float) -> float:
    """Two significant digits: an estimate, not an invoice."""
    if usd <= 0:
        return 0.0
    return round(usd, 1 - math.floor(math.log10(usd)))


def _count_states(scope: dict[str, Any]) -> int:
    total = 0
    for state in scope.get("States", {}).values():
        total += 1
        for branch in state.get("Branches", []):
            total += _count_states(branch)
        if "ItemProcessor" in state:
            total += _count_states(state["ItemProcessor"])
    return total


def _targets(state: dict[str, Any]) -> list[str]:
    out = [c["Next"] for c in state.get("Choices", [])]
    out += [state[k] for k in ("Next", "Default") if k in state]
    out += [c["Next"] for c in state.get("Catch", [])]
    return out


def _loop_bound(rule: Any) -> int | None:
    """The ``max_iterations`` of a loop Choice rule: its ``NumericLessThan`` on a ``loops`` counter."""
    if isinstance(rule, dict):
        if "NumericLessThan" in rule and str(rule.get("Variable", "")).startswith("$.loops"):
            return int(rule["NumericLessThan"])
        for value in rule.values():
            found = _loop_bound(value)
            if found is not None:
                return found
    if isinstance(rule, list):
        for value in rule:
            found = _loop_bound(value)
            if found is not None:
                return found
    return None


class _Scope:
    """One ``States`` scope (the machine, a Parallel branch, a Map's item processor)."""

    def __init__(self, body: dict[str, Any], foreach_items: int) -> None:
        self.states: dict[str, Any] = body["States"]
        self.start: str = body["StartAt"]
        self.items = foreach_items
        self.back: set[tuple[str, str]] = set()
        self.loops: dict[str, tuple[str, int]] = {}
        """Loop head -> (the Choice whose back-edge returns to it, the loop's bound)."""
        self.order: list[str] = []
        self._walk()
        self.tables: dict[str | None, dict[str, Span]] = {}
        self.owns: dict[str, Span] = {}

    def _walk(self) -> None:
        """Find back-edges (depth-first, iteratively) and a topological order of what remains."""
        on_stack: set[str] = set()
        done: set[str] = set()
        post: list[str] = []
        stack: list[tuple[str, list[str]]] = [(self.start, list(_targets(self.states[self.start])))]
        on_stack.add(self.start)
        while stack:
            name, todo = stack[-1]
            if todo:
                nxt = todo.pop(0)
                if nxt in on_stack:
                    self.back.add((name, nxt))
                    state = self.states[name]
                    rule = next((c for c in state.get("Choices", []) if c["Next"] == nxt), None)
                    bound = _loop_bound(rule)
                    self.loops[nxt] = (name, bound if bound is not None else 1)
                elif nxt not in done and nxt in self.states:
                    on_stack.add(nxt)
                    stack.append((nxt, list(_targets(self.states[nxt]))))
                continue
            stack.pop()
            on_stack.discard(name)
            done.add(name)
            post.append(name)
        self.order = post  # successors come before their predecessors

    def span(self) -> Span:
        return self.table(None)[self.start]

    def table(self, stop: str | None) -> dict[str, Span]:
        """The span from each state up to (not including) ``stop``, or to the end of the scope."""
        if stop in self.tables:
            return self.tables[stop]
        table: dict[str, Span] = {}
        self.tables[stop] = table
        for name in self.order:
            table[name] = self._from(name, stop, table)
        return table

    def _from(self, name: str, stop: str | None, table: dict[str, Span]) -> Span:
        if name == stop:
            return ZERO
        loop = self.loops.get(name)
        if loop is not None and loop[0] != stop:
            choice, bound = loop
            body = self._from_plain(name, choice, self.table(choice)) + self.own(choice)
            after = self._after(choice, stop, table, exclude_back=True)
            return Span(body.lo, body.hi.times(bound)) + after
        return self._from_plain(name, stop, table)

    def _from_plain(self, name: str, stop: str | None, table: dict[str, Span]) -> Span:
        if name == stop:
            return ZERO
        return self.own(name) + self._after(name, stop, table)

    def _after(self, name: str, stop: str | None, table: dict[str, Span], *, exclude_back: bool = True) -> Span:
        state = self.states[name]
        kind = state.get("Type")
        if kind in ("Fail", "Succeed"):
            return ZERO

        def at(target: str) -> Span:
            if target == stop:
                return ZERO
            return table.get(target, ZERO)

        if kind == "Choice":
            options = [c["Next"] for c in state["Choices"]] + ([state["Default"]] if "Default" in state else [])
            spans = [at(t) for t in options if not (exclude_back and (name, t) in self.back)]
            return Span(_lowest(s.lo for s in spans), _highest(s.hi for s in spans))
        success = at(state["Next"]) if "Next" in state else ZERO
        caught = [at(c["Next"]) for c in state.get("Catch", [])]
        if not caught:
            return success
        return Span(success.lo, _highest([success.hi, *(s.hi for s in caught)]))

    def own(self, name: str) -> Span:
        """One pass through the state itself (branches and items included, what follows it not)."""
        if name not in self.owns:
            self.owns[name] = self._own(self.states[name])
        return self.owns[name]

    def _own(self, state: dict[str, Any]) -> Span:
        kind = state.get("Type", "Pass")
        base = Tally(transitions=1, events=_EVENTS.get(kind, 2))
        if kind == "Task":
            return _task(state, base)
        if kind == "Parallel":
            span = Span(base, base)
            for branch in state.get("Branches", []):
                span = span + _Scope(branch, self.items).span()
            return span
        if kind == "Map":
            item = _Scope(state["ItemProcessor"], self.items).span()
            n = -(-self.items // _items_per_iteration(state["ItemProcessor"], self.items))
            config = state["ItemProcessor"].get("ProcessorConfig", {})
            if config.get("Mode") == "DISTRIBUTED":  # items run as child executions, with histories of their own
                extra = Tally(events=DISTRIBUTED_MAP_EVENTS)
                lo = base + extra + Tally(item.lo.transitions * n, item.lo.invocations * n, 0, item.lo.gb_seconds * n)
                hi = base + extra + Tally(item.hi.transitions * n, item.hi.invocations * n, 0, item.hi.gb_seconds * n)
                return Span(lo, hi)
            per_item = Tally(events=INLINE_ITEM_EVENTS)
            return Span(base + (item.lo + per_item).times(n), base + (item.hi + per_item).times(n))
        return Span(base, base)


def _items_per_iteration(processor: dict[str, Any], items: int) -> int:
    """How many of ``items`` list items one Map iteration handles: the executor's batch size for its Task's
    context (``protocol.batch_size``: ``batch_max``, spread over ``max_concurrency`` lanes), else 1."""
    for state in processor.get("States", {}).values():
        payload = (state.get("Parameters") or {}).get("Payload")
        if isinstance(payload, dict) and isinstance(payload.get("ctx"), str):
            try:
                ctx = json.loads(payload["ctx"])
                batch, lanes = ctx.get("batch_max"), ctx.get("max_concurrency")
            except (ValueError, AttributeError):
                continue
            if isinstance(batch, int) and batch > 1:
                return batch_size(items, batch, lanes if isinstance(lanes, int) else None)
    return 1


def _task(state: dict[str, Any], base: Tally) -> Span:
    """A Task: one call, or up to ``1 + MaxAttempts`` of its node's policy (the Lambda service rule aside)."""
    resource = str(state.get("Resource", ""))
    if resource.endswith(".waitForTaskToken"):
        base = base + Tally(events=1)  # TaskSubmitted
    if not resource.startswith("arn:aws:states:::lambda:invoke"):
        return Span(base, base)
    payload = (state.get("Parameters") or {}).get("Payload") or {}
    ours = isinstance(payload, dict) and "ctx" in payload
    memory_gb = (EXECUTOR_MEMORY_MB if ours else USER_FUNCTION_MEMORY_MB) / 1024
    retries = sum(
        int(rule.get("MaxAttempts", 3))
        for rule in state.get("Retry", [])
        if not all(str(e).startswith("Lambda.") for e in rule.get("ErrorEquals", []))
    )
    timeout = float(state.get("TimeoutSeconds", 60))
    if resource.endswith(".waitForTaskToken"):
        # TimeoutSeconds bounds the wait for the callback; the function itself ends within its own timeout
        timeout = min(timeout, float(EXECUTOR_TIMEOUT_SECONDS))
    lo = base + Tally(invocations=1, gb_seconds=MIN_CALL_SECONDS * memory_gb)
    hi = base + Tally(
        transitions=retries,
        invocations=1 + retries,
        events=RETRY_EVENTS * retries,
        gb_seconds=(1 + retries) * timeout * memory_gb,
    )
    return Span(lo, hi)
