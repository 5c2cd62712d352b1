"""Compile a validated graph spec to an Amazon States Language definition (JSONPath query language).

What the compilation guarantees (quoted by the README):

- One state per node, named by the node id (a ``foreach`` node is a distributed Map state). Helper states
  carry the node id and a suffix: ``<node>.when`` (Choice: do the node's incoming conditions hold?),
  ``<node>.failed`` (record an optional node's failure), ``<node>.plan`` / ``<node>.item`` /
  ``<node>.collect`` (a foreach's Task that splits its list into batches, the Map's child Task that runs one
  batch of items, and the Task that gathers the results in item order), ``<tail>.loop`` (Choice: take a
  loop's back-edge?), ``<x>.end`` (end of a branch reached by a Choice), and one Parallel per fan-out
  named ``a+b+...``. A
  ``lambda:`` node adds ``<node>.record``, ``<node>.resumed`` (Choice: did it succeed before a resume?
  then its record replays the output and the function is not invoked again; ``<node>.resumed-loop`` for
  an iteration in a loop), ``<node>.check``/``<node>.missing`` (its referenced fields are
  present, else a catchable ``stepgraph.ReferenceError``) and, when not optional, ``<node>.error`` with
  the ``Fail`` states ending the run (``<node>.fail``, ``.fail-timeout``, ``.fail-reserved``). A cached
  ``lambda:`` node adds ``<node>.cache`` (the executor looks its output up), ``<node>.hit`` (a Choice running
  the function only on a miss) and, at the end of a scope, ``<node>.cached`` (a Pass).
- Dependencies: a node starts only after every node it depends on has finished or been skipped. For
  series-parallel graphs (chains, fan-out/fan-in, diamonds, any nesting of them) nothing else delays it,
  so the run takes its critical path; for other shapes the non-series-parallel parts are cut at level
  boundaries, never worse than a level-by-level schedule (see :mod:`statemachine.graph`).
- Concurrency: at most ``options.max_concurrency`` nodes (counting foreach items) run at once; a fan-out
  wider than that runs in that many static lanes (Step Functions cannot cap a Parallel natively).
- Conditions are native Choice rules with type guards; a node whose incoming edges are all false or come
  from skipped nodes is skipped, at the cost of one Choice transition and no Lambda call.
- Retry: each Task's ``Retry`` is AWS's recommended retry on Lambda service errors, then the node's policy
  on ``States.ALL``; ``TimeoutSeconds`` is the node's timeout. An optional node's failure is caught,
  recorded by the executor, and the run goes on with a ``null`` output.
- AWS's limits: a node's params are in the definition once (bookkeeping Tasks get the context without
  them); a Parallel join gathers only what its branches changed (never the input once per branch); an
  inline Map asks for at most 40 at once; no ``Fail`` state uses a reserved ``States.`` name. What a
  spec's worst case costs against the definition size and history limits is :mod:`statemachine.plan`.
- State transitions per executed node: 1 for a plain node; +1 for the Choice of a node with incoming
  conditions (nodes that run exactly when the node before them did need none: that first Choice skips
  them all); +1 per loop iteration (the back-edge Choice); +1 per Parallel; a foreach is its plan Task,
  the Map and the collect Task in the run's own history, plus one child execution per batch of items
  (one Task each); a ``lambda:`` node adds its ``.resumed`` Choice and ``.record`` Task (and its ``.check``
  Choice when its params hold references).
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statemachine import conditions
from statemachine.errors import CompileError, ReferenceResolutionError
from statemachine.graph import MAX_BRANCHES, Block, GraphModel, LoopB, ParB, SeqB, TaskB, block_nodes, first_node
from statemachine.protocol import CACHE_DOC_KEY, TOOL_SERVICE_RETRY, NodeContext, Retry, service_errors
from statemachine.references import Path, has_reference, iter_references, jsonpath, parse_template
from statemachine.spec import EXECUTOR_TIMEOUT_SECONDS, MAX_TOOL_TIMEOUT_SECONDS, RETRY_DEFAULTS

if TYPE_CHECKING:
    from statemachine.spec import GraphSpec, Node, RetryPolicy

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_WAIT = "arn:aws:states:::lambda:invoke.waitForTaskToken"
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
]
SERVICE_RETRY: dict[str, Any] = {
    "ErrorEquals": LAMBDA_SERVICE_ERRORS,
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "JitterStrategy": "FULL",
}
"""AWS's recommended retry of transient Lambda service errors ("Handle transient Lambda service exceptions"),
plus throttling; full jitter so throttled branches do not retry in step."""

MAX_STATE_NAME = 80
PAYLOAD_LIMIT = 256 * 1024
DOC_BUDGET_MAX = 96 * 1024
DOC_BUDGET_MIN = 4 * 1024
JOIN_OVERHEAD = 16 * 1024
"""Room kept for the ``{"d": ...}`` wrappers and the executor request around a document."""
BRANCH_KEYS = ("results", "loops", "sd")
"""What a Parallel branch hands back to its join: the document keys a node can change (never the input)."""
BATCH_SECONDS = 840
"""What a ``foreach`` batch may spend on its items' worst case (the rest is room for its store writes)."""
MAX_BATCH_ITEMS = 100


def loop_counter(head: str) -> str:
    """The ``doc.loops`` key of a loop's bound counter (``@`` keeps it apart from node ids)."""
    return f"{head}@loop"


def doc_budget(join_width: int) -> int:
    """The document budget for a graph whose widest join gathers ``join_width`` branch documents."""
    share = (PAYLOAD_LIMIT - JOIN_OVERHEAD) // max(1, join_width)
    return max(DOC_BUDGET_MIN, min(DOC_BUDGET_MAX, share))


@dataclass(frozen=True)
class Cont:
    """Where control goes after a block: the next state, or the end of the scope (``wrap``: a Parallel branch)."""

    next: str | None = None
    wrap: bool = False


@dataclass(frozen=True)
class NodeEmit:
    """What emitting one node's states takes: the node and its context, the name of its main state, where the
    run continues after it, the states being filled, and the state its failures are caught by (if any)."""

    node: Node
    ctx: NodeContext
    name: str
    cont: Cont
    states: dict[str, Any]
    catch_to: str | None


class _Compiler:
    def __init__(
        self, spec: GraphSpec, model: GraphModel, executor_arn: str, budget: int, map_caps: dict[str, int]
    ) -> None:
        self.budget = budget
        self.map_caps = map_caps
        self.spec = spec
        self.model = model
        self.arn = executor_arn
        self.gates = model.gate_rules()
        self.inline = model.inline_paths()
        self.names: set[str] = set()
        self.loop_heads = {loop.head: loop for loop in model.loops}
        self.updaters = {n.id for n in spec.nodes if n.update_state}
        self.looped = {n for n in model.nodes if model.in_loop(n)}
        self.implied: set[str] = set()
        self.skip_conts: dict[str, Cont] = {}
        self.helper_timeout = min(spec.options.default_timeout_seconds, MAX_TOOL_TIMEOUT_SECONDS)
        """TimeoutSeconds of the executor's bookkeeping Tasks: the default, within the executor Lambda's own."""

    # ---- naming ----------------------------------------------------------------------------------------

    def claim(self, name: str) -> str:
        name = name[:MAX_STATE_NAME]
        base, counter = name, 2
        while name in self.names:
            suffix = f"~{counter}"
            name = base[: MAX_STATE_NAME - len(suffix)] + suffix
            counter += 1
        self.names.add(name)
        return name

    def terminal(self, cont: Cont, anchor: str, states: dict[str, Any]) -> str:
        """The state a Choice's Default goes to for ``cont``: the next state, or an end state."""
        if cont.next is not None:
            return cont.next
        name = self.claim(f"{anchor}.end")
        if cont.wrap:
            states[name] = {"Type": "Pass", "Parameters": {"d": {f"{k}.$": f"$.{k}" for k in BRANCH_KEYS}}, "End": True}
        else:
            states[name] = {"Type": "Succeed"}
        return name

    # ---- blocks ----------------------------------------------------------------------------------------

    def emit(self, block: Block, cont: Cont, states: dict[str, Any]) -> str:
        if isinstance(block, TaskB):
            return self.emit_node(self.model.nodes[block.node], cont, states)
        if isinstance(block, SeqB):
            for before, after in zip(block.items, block.items[1:], strict=False):
                if (
                    isinstance(before, TaskB)
                    and isinstance(after, TaskB)
                    and self.gates[before.node] is not False
                    and not isinstance(self.gates[after.node], bool)
                    and self.gates[after.node] == conditions.present(Path(before.node))
                ):
                    # ``after`` runs exactly when ``before`` did: no Choice of its own; ``before``'s gate skips both
                    self.implied.add(after.node)
            nxt = cont
            entry = ""
            for item in reversed(block.items):
                entry = self.emit(item, nxt, states)
                nxt = Cont(entry)
            return entry
        if isinstance(block, LoopB):
            return self.emit_loop(block, cont, states)
        return self.emit_parallel(block, cont, states)

    def emit_loop(self, block: LoopB, cont: Cont, states: dict[str, Any]) -> str:
        loop = block.loop
        if self.gates[loop.head] is False:  # the loop can never be entered (its conditions are constant false)
            return self.terminal(self.skipping(cont), loop.head, states)
        tail_ran = True if self.gates[loop.tail] is True else conditions.present(Path(loop.tail))
        counter = jsonpath(("loops", loop_counter(loop.head)))
        bound = {
            "And": [
                {"Variable": counter, "IsPresent": True},
                {"Variable": counter, "IsNumeric": True},
                {"Variable": counter, "NumericLessThan": loop.bound},
            ]
        }
        rule = conditions.combine_and(tail_ran, loop.condition.choice_rule() if loop.condition else True, bound)
        if rule is False:
            return self.emit(block.body, cont, states)
        name = self.claim(f"{loop.tail}.loop")
        states[name] = {}  # reserve the position; filled below once the body's entry is known
        entry = self.emit(block.body, Cont(name), states)
        assert not isinstance(rule, bool)
        states[name] = {
            "Type": "Choice",
            "Choices": [{**rule, "Next": loop.head}],
            "Default": self.terminal(cont, name, states),
        }
        return entry

    def emit_parallel(self, block: ParB, cont: Cont, states: dict[str, Any]) -> str:
        assert 1 < len(block.branches) <= MAX_BRANCHES
        firsts = [first_node(b) for b in block.branches]
        name = self.claim("+".join(firsts))
        branches = []
        watched = self.updaters | self.looped
        contents: list[set[str]] = []
        for branch in block.branches:
            sub: dict[str, Any] = {}
            entry = self.emit(branch, Cont(wrap=True), sub)
            branches.append({"StartAt": entry, "States": _ordered(sub, entry)})
            # only the nodes the join asks about: listing every branch's nodes at every level costs their depth
            contents.append(watched.intersection(block_nodes(branch)) if watched else set())
        wrapped = cont.next is None and cont.wrap
        join = self.join(contents, whole=not wrapped)
        state: dict[str, Any] = {"Type": "Parallel", "Branches": branches}
        state["ResultSelector"] = {"d": join} if wrapped else join
        if cont.next is not None:
            state["Next"] = cont.next
        else:
            state["End"] = True
        states[name] = state
        return name

    def join(self, contents: list[set[str]], *, whole: bool) -> dict[str, Any]:
        """The Parallel's ResultSelector: one document from the branches' ``{"d": {results, loops, sd}}``.

        Branches hand back only what they change, so the join is not the run's input times the branch count:
        ``run`` and ``input`` come from the execution input, and ``state`` is always ``input`` merged with
        ``sd`` (every key a node wrote). ``whole`` is false for a Parallel ending a branch: its own join
        carries only the changed keys too.
        """

        def merge(key: str, idx: list[int]) -> str:
            if not idx:
                return f"$[0].d.{key}"
            expr = f"$[{idx[0]}].d.{key}"
            for i in idx[1:]:
                expr = f"States.JsonMerge({expr}, $[{i}].d.{key}, false)"
            return expr

        all_idx = list(range(len(contents)))
        updating = [i for i, nodes in enumerate(contents) if nodes & self.updaters]
        looping = [i for i, nodes in enumerate(contents) if nodes & self.looped]
        sd = merge("sd", updating)
        out: dict[str, Any] = {}
        if whole:
            out["run.$"] = "$$.Execution.Input.run"
            out["input.$"] = "$$.Execution.Input.input"
            out["state.$"] = f"States.JsonMerge($$.Execution.Input.input, {sd}, false)"
        out["results.$"] = merge("results", all_idx)
        out["loops.$"] = merge("loops", looping)
        out["sd.$"] = sd
        return out

    # ---- nodes -----------------------------------------------------------------------------------------

    def context(self, node: Node) -> NodeContext:
        loop = self.loop_heads.get(node.id)
        return NodeContext(
            node=node.id,
            tool=node.tool,
            params=self.model.effective_params(node),
            retry=Retry.of(RETRY_DEFAULTS if node.is_human else self.spec.retry_for(node)),
            timeout_seconds=self.spec.timeout_for(node),
            optional=node.optional,
            update_state=node.update_state,
            foreach=node.foreach,
            max_concurrency=self.model.map_concurrency(node, self.map_caps) if node.foreach else None,
            in_loop=node.id in self.looped,
            inline_paths=self.inline.get(node.id, []),
            clears=sorted(loop.body - {node.id}, key=self.model.order.__getitem__) if loop else [],
            loop_counter=loop_counter(node.id) if loop else None,
            resets=sorted(
                loop_counter(inner.head)
                for inner in self.model.loops
                if loop and inner is not loop and inner.body < loop.body
            ),
            doc_budget=self.budget,
            cache_ttl=node.cache.ttl_seconds if node.cache else None,
            **self.batching(node),
        )

    def batching(self, node: Node) -> dict[str, Any]:
        """A ``foreach`` node's batch limit: as many items as their worst case fits one executor invocation."""
        if not node.foreach:
            return {}
        worst = item_worst_seconds(self.spec.timeout_for(node), self.spec.retry_for(node))
        if worst > BATCH_SECONDS:
            return {"batch_max": 1, "item_retries": "states"}
        return {"batch_max": max(1, min(MAX_BATCH_ITEMS, int(BATCH_SECONDS // worst)))}

    def task(
        self,
        parameters: dict[str, Any],
        *,
        timeout: int,
        retry: list[dict[str, Any]],
        resource: str = LAMBDA_INVOKE,
        catch_to: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A Task state on the optimized Lambda integration; ``fields`` (``ResultPath``, ``Next``...) follow the
        retry policy, and a catch-all to ``catch_to`` comes last."""
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": resource,
            "Parameters": parameters,
            "TimeoutSeconds": timeout,
            "Retry": retry,
            **fields,
        }
        if catch_to:
            state["Catch"] = catch_all(catch_to)
        return state

    def helper(self, node: Node, ctx: NodeContext, mode: str, **fields: Any) -> dict[str, Any]:
        """An executor bookkeeping Task (``failed``, ``record``, ``lookup``, ``answer``): no params, the helpers'
        timeout, Lambda service errors retried."""
        return self.task(self.payload(node, ctx, mode), timeout=self.helper_timeout, retry=self.retry(None), **fields)

    def payload(self, node: Node, ctx: NodeContext, mode: str, *, batch: bool = False) -> dict[str, Any]:
        """The executor request. Only the steps that run the tool (``run``, ``batch``) carry the params: the
        bookkeeping steps get the context without them, so a node's params are in the definition once."""
        with_params = ("run", "batch", "lookup", "wait")
        text = ctx.to_json() if mode in with_params else ctx.without_params().to_json()
        body: dict[str, Any] = {"node": node.id, "tool": node.tool, "mode": mode, "ctx": text}
        if batch:
            body.update({"doc.$": "$.doc", "start.$": "$.start", "size.$": "$.size"})
        else:
            body["doc.$"] = "$"
        body["retry_count.$"] = "$$.State.RetryCount"
        body["execution.$"] = "$$.Execution.Id"
        return {"FunctionName": self.arn, "Payload": body}

    @staticmethod
    def retry(policy: RetryPolicy | Retry | None, tool: str | None = None) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = [dict(SERVICE_RETRY)]
        transient = service_errors(tool) if tool else ()
        if transient:
            rules.append({**TOOL_SERVICE_RETRY, "ErrorEquals": list(transient)})
        if policy is not None and policy.max_attempts:
            rule: dict[str, Any] = {
                "ErrorEquals": ["States.ALL"],
                "IntervalSeconds": policy.interval_seconds,
                "MaxAttempts": policy.max_attempts,
                "BackoffRate": policy.backoff_rate,
            }
            if policy.max_delay_seconds:
                rule["MaxDelaySeconds"] = policy.max_delay_seconds
            if policy.jitter == "FULL":
                rule["JitterStrategy"] = "FULL"
            rules.append(rule)
        return rules

    @staticmethod
    def finish(state: dict[str, Any], cont: Cont, *, wrap_payload: bool = True) -> dict[str, Any]:
        """Set how a Task hands on the document: ``$.Payload``, wrapped as ``{"d": ...}`` at a branch end."""
        if cont.next is not None:
            state["OutputPath"] = "$.Payload"
            state["Next"] = cont.next
        elif cont.wrap and wrap_payload:
            state["ResultSelector"] = {"d": {f"{k}.$": f"$.Payload.{k}" for k in BRANCH_KEYS}}
            state["End"] = True
        else:
            state["OutputPath"] = "$.Payload"
            state["End"] = True
        return state

    def emit_node(self, node: Node, cont: Cont, states: dict[str, Any]) -> str:
        gate = True if node.id in self.implied else self.gates[node.id]
        if gate is False:
            return self.terminal(self.skipping(cont), node.id, states)
        ctx = self.context(node)
        name = self.claim(node.id)
        head = name
        """The node's first state: what its gate leads to (a ``lambda:`` node checks its references first)."""
        entry = name
        if gate is not True:
            entry = self.claim(f"{node.id}.when")
            states[entry] = {}
        catch_to = self.claim(f"{node.id}.failed") if (node.optional or node.is_lambda) else None
        emitting = NodeEmit(node, ctx, name, cont, states, catch_to)
        if node.foreach:
            head = self.emit_map(emitting)
            entry = head if gate is True else entry
        elif node.is_lambda:
            head = self.emit_lambda(emitting)
            entry = head if gate is True else entry
        elif node.is_human:
            head = self.emit_human(emitting)
            entry = head if gate is True else entry
        else:
            task = self.task(
                self.payload(node, ctx, "run"),
                timeout=ctx.timeout_seconds,
                retry=self.retry(ctx.retry, ctx.tool),
                catch_to=catch_to,
            )
            states[name] = self.finish(task, cont)
        if catch_to:
            recorder = self.helper(node, ctx, "failed")
            if node.optional:
                states[catch_to] = self.finish(recorder, cont)
            else:
                # a user's Lambda failed for good: record it, then fail the run with the function's own error
                states[catch_to] = {**recorder, "ResultPath": None, "Next": self.emit_fail(node.id, states)}
        if gate is not True:
            states[entry] = {
                "Type": "Choice",
                "Choices": [{**gate, "Next": head}],
                "Default": self.terminal(self.skipping(cont), node.id, states),
            }
        if node.id in self.implied:
            self.skip_conts[entry] = self.skipping(cont)
        return entry

    def emit_fail(self, node_id: str, states: dict[str, Any]) -> str:
        """End the run with the caught error's name, except the reserved ``States.*`` names a Fail may not use."""
        check, fail = self.claim(f"{node_id}.error"), self.claim(f"{node_id}.fail")
        timeout, other = self.claim(f"{node_id}.fail-timeout"), self.claim(f"{node_id}.fail-reserved")
        error = "$.failure.Error"
        states[check] = {
            "Type": "Choice",
            "Choices": [
                {"Variable": error, "StringEquals": "States.Timeout", "Next": timeout},
                {"Variable": error, "StringMatches": "States.*", "Next": other},
            ],
            "Default": fail,
        }
        states[fail] = {"Type": "Fail", "ErrorPath": error, "CausePath": "$.failure.Cause"}
        states[timeout] = {"Type": "Fail", "Error": "stepgraph.Timeout", "CausePath": "$.failure.Cause"}
        states[other] = {"Type": "Fail", "Error": "stepgraph.NodeFailed", "CausePath": "$.failure.Cause"}
        return check

    def skipping(self, cont: Cont) -> Cont:
        """Where a skip goes: past the following nodes that run only if this one did."""
        if cont.next is not None and cont.next in self.skip_conts:
            return self.skip_conts[cont.next]
        return cont

    def emit_lambda(self, e: NodeEmit) -> str:
        """A user's Lambda invoked directly (params resolved by JSONPath), then ``<node>.record``; the first state.

        A JSONPath to a field the document lacks is ``States.Runtime`` on AWS, which no Catch takes: so a
        ``<node>.check`` Choice first sends a run missing any referenced field to ``<node>.missing``, which
        fails the node with ``stepgraph.ReferenceError`` like a built-in tool's missing reference.
        """
        node, ctx, name, states, catch_to = e.node, e.ctx, e.name, e.states, e.catch_to
        head = name
        paths = _reference_paths(ctx.params)
        if paths:
            head = self.claim(f"{node.id}.check")
            missing = self.claim(f"{node.id}.missing")
            absent = [{"Not": {"Variable": p.jsonpath(), "IsPresent": True}} for p in paths]
            states[head] = {
                "Type": "Choice",
                "Choices": [{**(absent[0] if len(absent) == 1 else {"Or": absent}), "Next": missing}],
                "Default": name,
            }
            listed = ", ".join(p.text for p in paths)
            states[missing] = {
                "Type": "Pass",
                "Result": {
                    "Error": ReferenceResolutionError.code,
                    "Cause": f"node {node.id!r}: a param references a field the run does not have (one of: {listed})",
                },
                "ResultPath": "$.failure",
                "Next": catch_to,
            }
        if ctx.cache_ttl:
            lookup = self.emit_lookup(e)
            if paths:
                states[head]["Default"] = lookup
            else:
                head = lookup
        return self.emit_recorded(
            e,
            head,
            {"FunctionName": node.tool[len("lambda:") :], "Payload": asl_payload(ctx.params)},
            retry=self.retry(ctx.retry, ctx.tool),
            mode="record",
            ResultSelector={
                "Payload.$": "$.Payload",
                "started.$": "$$.State.EnteredTime",
                "retry_count.$": "$$.State.RetryCount",
            },
        )

    def emit_recorded(
        self,
        e: NodeEmit,
        head: str,
        parameters: dict[str, Any],
        *,
        retry: list[dict[str, Any]],
        mode: str,
        resource: str = LAMBDA_INVOKE,
        **fields: Any,
    ) -> str:
        """The node's own Task (a user's Lambda, a person's wait), its result at ``results.<node>``, then the
        executor's ``mode`` step (``<node>.<mode>``) recording it; the first state is ``<node>.resumed``,
        which goes straight to that step when a resumed run has the result (``head`` otherwise)."""
        node, ctx = e.node, e.ctx
        record = self.claim(f"{node.id}.{mode}")
        entry = self.emit_resumed(e, head, record)
        e.states[e.name] = self.task(
            parameters,
            timeout=ctx.timeout_seconds,
            retry=retry,
            resource=resource,
            catch_to=e.catch_to,
            **fields,
            ResultPath=jsonpath(("results", node.id)),
            Next=record,
        )
        e.states[record] = self.finish(self.helper(node, ctx, mode), e.cont)
        return entry

    def emit_lookup(self, e: NodeEmit) -> str:
        """A cached ``lambda:`` node: ``<node>.cache`` (the executor's ``lookup``) and the Choice ``<node>.hit``,
        which runs the function (``name``) only on a miss; a hit already recorded the node and applied its output.

        The lookup carries the params (in the definition a second time, beside the Task's own): it resolves them
        as the Task would to compute the cache key.
        """
        node, ctx, name, cont, states = e.node, e.ctx, e.name, e.cont, e.states
        lookup, choice = self.claim(f"{node.id}.cache"), self.claim(f"{node.id}.hit")
        states[lookup] = self.helper(node, ctx, "lookup", OutputPath="$.Payload", Next=choice)
        hit = cont.next
        if hit is None:
            hit = self.claim(f"{node.id}.cached")
            states[hit] = self.finish_pass(cont)
        states[choice] = {
            "Type": "Choice",
            "Choices": [{"Variable": jsonpath((CACHE_DOC_KEY, node.id)), "IsPresent": True, "Next": name}],
            "Default": hit,
        }
        return lookup

    @staticmethod
    def finish_pass(cont: Cont) -> dict[str, Any]:
        """A Pass ending a scope with the document as it is (wrapped as ``{"d": ...}`` at a branch end)."""
        if cont.wrap:
            return {"Type": "Pass", "Parameters": {"d": {f"{k}.$": f"$.{k}" for k in BRANCH_KEYS}}, "End": True}
        return {"Type": "Pass", "End": True}

    def emit_human(self, e: NodeEmit) -> str:
        """A person's step: a ``.waitForTaskToken`` Task, then ``<node>.answer`` recording the answer; the first
        state (``<node>.resumed``: a resumed run does not ask again for an answer it has).

        The Task invokes the executor (``wait``) with ``$$.Task.Token``; the executor records the node
        WAITING and keeps the token for the respond route, whose SendTaskSuccess output (the answer) the
        Task puts at ``results.<node>``. ``TimeoutSeconds`` bounds the wait (``States.Timeout``). Only the
        Lambda service errors of the invoke are retried: a person's answer is not asked for again.
        """
        payload = self.payload(e.node, e.ctx, "wait")
        payload["Payload"]["token.$"] = "$$.Task.Token"
        return self.emit_recorded(
            e, e.name, payload, retry=self.retry(None), mode="answer", resource=LAMBDA_INVOKE_WAIT
        )

    def emit_resumed(self, e: NodeEmit, invoke: str, record: str) -> str:
        """``<node>.resumed``: a Choice skipping the user's function when a resumed run's document says it
        succeeded before (``run.done.<node>``: how many of its iterations did), straight to its record,
        which replays the recorded output. The executor cannot skip a function the Task invokes itself.

        In a loop the iteration about to run is ``loops.<node>`` + 1 (the API sets ``loops.<node>`` to 0
        in a resumed document for every node in ``run.done``), so ``<node>.resumed-loop`` compares them.
        """
        node, ctx, states = e.node, e.ctx, e.states
        name = self.claim(f"{node.id}.resumed")
        done = jsonpath(("run", "done", node.id))
        present = {"Variable": done, "IsPresent": True}
        if not ctx.in_loop:
            states[name] = {"Type": "Choice", "Choices": [{**present, "Next": record}], "Default": invoke}
            return name
        again = self.claim(f"{node.id}.resumed-loop")
        states[name] = {"Type": "Choice", "Choices": [{**present, "Next": again}], "Default": invoke}
        earlier = {"Variable": jsonpath(("loops", node.id)), "NumericLessThanPath": done, "Next": record}
        states[again] = {"Type": "Choice", "Choices": [earlier], "Default": invoke}
        return name

    def emit_map(self, e: NodeEmit) -> str:
        """``<node>.plan`` (batches of the list) → ``<node>`` (distributed Map, a child per batch) → ``.collect``.

        The Map iterates the batches' first indexes, never the items: the list may be offloaded, and neither
        the payload nor the parent's history grows with it. Child failures are tolerated by the Map: the
        executor records an item's final failure on the node, and ``.collect`` raises it, so the error a
        run or a ``Catch`` sees is the item's own, in AWS and in moto alike.
        """
        node, ctx, name, cont, states, catch_to = e.node, e.ctx, e.name, e.cont, e.states, e.catch_to
        assert node.foreach is not None
        plan_name = self.claim(f"{node.id}.plan")
        item_name = self.claim(f"{node.id}.item")
        collect_name = self.claim(f"{node.id}.collect")
        plan = self.task(
            self.payload(node, ctx, "plan"),
            timeout=EXECUTOR_TIMEOUT_SECONDS,  # plan and collect read the whole list: the executor's limit
            retry=self.retry(None),
            catch_to=catch_to,
            OutputPath="$.Payload",
            Next=name,
        )
        worst = item_worst_seconds(ctx.timeout_seconds, ctx.retry)
        native = ctx.item_retries == "states"
        item_task = self.task(
            self.payload(node, ctx, "batch", batch=True),
            timeout=ctx.timeout_seconds
            if native
            else int(min(EXECUTOR_TIMEOUT_SECONDS, (ctx.batch_max or 1) * worst + 30)),
            # the node's policy also retries a batch whose invocation crashed or timed out: it resumes after
            # its finished items (an item's own failures are retried inside the batch, never by this rule)
            retry=self.retry(ctx.retry, ctx.tool),
            OutputPath="$.Payload",
            End=True,
        )
        state: dict[str, Any] = {
            "Type": "Map",
            "ItemsPath": "$.starts",
            "ItemSelector": {"doc.$": "$.doc", "start.$": "$$.Map.Item.Value", "size.$": "$.size"},
            "MaxConcurrency": ctx.max_concurrency,
        }
        children: dict[str, Any] = {item_name: item_task}
        if self.spec.options.workflow_type == "EXPRESS":
            # Express workflows have no distributed Map (nor a history to outgrow): the batches run inline, and
            # a batch that failed for good ends its iteration quietly, as a tolerated child would
            processor: dict[str, Any] = {"Mode": "INLINE"}
            lost = self.claim(f"{node.id}.lost")
            item_task["Catch"] = catch_all(lost, result_path=None)
            children[lost] = {"Type": "Pass", "Result": {"ok": False}, "End": True}
        else:
            processor = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
            state["ToleratedFailurePercentage"] = 100.0  # a decimal: moto's grammar reads an integer as an error
        state["ItemProcessor"] = {"ProcessorConfig": processor, "StartAt": item_name, "States": children}
        state.update({"ResultPath": None, "OutputPath": "$.doc", "Next": collect_name})
        collect = self.task(
            self.payload(node, ctx, "collect"),
            timeout=EXECUTOR_TIMEOUT_SECONDS,
            retry=self.retry(None),
            catch_to=catch_to,
        )
        states[plan_name] = plan
        states[name] = state
        states[collect_name] = self.finish(collect, cont)
        return plan_name


def catch_all(next_state: str, *, result_path: str | None = "$.failure") -> list[dict[str, Any]]:
    """A ``Catch`` of every error, the error kept at ``result_path`` (``$.failure``: the ``failed`` step reads it)."""
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": result_path, "Next": next_state}]


def item_worst_seconds(timeout_seconds: int, policy: RetryPolicy | Retry | None) -> float:
    """The longest one ``foreach`` item can take: every attempt timing out, every retry waiting its longest.

    Counting stops once past ``BATCH_SECONDS`` (the answer is then only "too long to batch").
    """
    retries = policy.max_attempts if policy is not None and policy.max_attempts else 0
    seconds = float((retries + 1) * (timeout_seconds + 1))
    delay = float(policy.interval_seconds or 1) if policy is not None else 0.0
    for _ in range(retries):
        if seconds > BATCH_SECONDS or policy is None:
            break
        seconds += min(delay, policy.max_delay_seconds) if policy.max_delay_seconds else delay
        delay *= policy.backoff_rate or 1.0
    return seconds


def _intrinsic_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("{", "\\{").replace("}", "\\}")
    return f"'{escaped}'"


def _intrinsic_arg(value: Any) -> str:
    """One argument of ``States.Array``/``States.Format``: a path, a string literal or a JSON scalar."""
    if isinstance(value, str):
        if has_reference(value):
            template = parse_template(value)
            if template.whole is not None:
                return template.whole.jsonpath()
            return _format(template)
        return _intrinsic_string(value)
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ValueError("lists in a lambda: node's params hold strings, numbers, booleans or null")


def _format(template: Any) -> str:
    pattern = "".join(
        piece.replace("\\", "\\\\").replace("'", "\\'").replace("{", "\\{").replace("}", "\\}")
        if isinstance(piece, str)
        else "{}"
        for piece in template.pieces
    )
    args = ", ".join(p.jsonpath() for p in template.paths)
    return f"States.Format('{pattern}', {args})"


def asl_payload(params: dict[str, Any]) -> dict[str, Any]:
    """Params as an ASL payload template: references become JSONPath (``key.$``), text ``States.Format``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and has_reference(value):
            out[f"{key}.$"] = _intrinsic_arg(value)
        elif isinstance(value, dict):
            out[key] = asl_payload(value)
        elif isinstance(value, list) and any(_holds_reference(v) for v in value):
            out[f"{key}.$"] = "States.Array(" + ", ".join(_intrinsic_arg(v) for v in value) + ")"
        else:
            out[key] = value
    return out


def _reference_paths(params: Any) -> list[Path]:
    """Every path the params read, once each, in order."""
    seen: dict[str, Path] = {}
    for _, _, template in iter_references(params):
        for path in template.paths:
            seen.setdefault(path.text, path)
    return list(seen.values())


def _holds_reference(value: Any) -> bool:
    if isinstance(value, str):
        return has_reference(value)
    if isinstance(value, dict):
        return any(_holds_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_reference(v) for v in value)
    return False


def _ordered(states: dict[str, Any], entry: str) -> dict[str, Any]:
    """States in flow order from ``entry`` (so the JSON reads top-down), unreachable ones last."""
    if len(states) == 1:
        return states
    order: dict[str, None] = {}
    todo = deque([entry])
    while todo:
        name = todo.popleft()
        if name in order or name not in states:
            continue
        order[name] = None
        todo.extend(_targets(states[name]))
    return {n: states[n] for n in itertools.chain(order, (n for n in states if n not in order))}


def _targets(state: dict[str, Any]) -> list[str]:
    out = [c["Next"] for c in state.get("Choices", [])]
    for key in ("Next", "Default"):
        if key in state:
            out.append(state[key])
    out.extend(c["Next"] for c in state.get("Catch", []))
    return out


def compile_graph(spec: GraphSpec, *, executor_arn: str, comment: str | None = None) -> dict[str, Any]:
    """The ASL definition of a validated spec; raises :class:`CompileError` if the output fails its check."""
    model = GraphModel.build(spec)
    decomposed = model.decompose()
    blocks = decomposed.block
    compiler = _Compiler(spec, model, executor_arn, doc_budget(model.join_width(blocks)), decomposed.map_caps)
    states: dict[str, Any] = {}
    entry = compiler.emit(blocks, Cont(), states)
    definition = {
        "Comment": comment or f"stepgraph: {spec.name}",
        "StartAt": entry,
        "States": _ordered(states, entry),
    }
    check_definition(definition)
    return definition


def definition_json(definition: dict[str, Any]) -> str:
    """The definition as CreateStateMachine takes it (compact, stable key order)."""
    return json.dumps(definition, separators=(",", ":"))


def check_definition(definition: dict[str, Any]) -> None:
    """Structural check: targets exist in their scope, names are unique machine-wide, every state is reachable.

    Raises :class:`CompileError` listing every problem; a failure is a compiler bug, never bad input.
    """
    problems: list[str] = []
    seen: set[str] = set()

    def scope(where: str, body: dict[str, Any]) -> None:
        states = body.get("States")
        start = str(body.get("StartAt"))
        if not isinstance(states, dict) or not states:
            problems.append(f"{where}: no States")
            return
        if start not in states:
            problems.append(f"{where}: StartAt {start!r} is not a state")
        for name, state in states.items():
            if name in seen:
                problems.append(f"{where}: state name {name!r} is used twice")
            seen.add(name)
            if len(name) > MAX_STATE_NAME:
                problems.append(f"{where}: state name {name!r} is longer than {MAX_STATE_NAME}")
            kind = state.get("Type")
            for target in _targets(state):
                if target not in states:
                    problems.append(f"{where}.{name}: target {target!r} is not a state of its scope")
            if kind == "Choice":
                if not state.get("Choices"):
                    problems.append(f"{where}.{name}: Choice without Choices")
            elif kind not in ("Succeed", "Fail") and ("Next" in state) == bool(state.get("End")):
                problems.append(f"{where}.{name}: needs exactly one of Next or End")
            if kind == "Parallel":
                for i, branch in enumerate(state.get("Branches", [])):
                    scope(f"{where}.{name}.Branches[{i}]", branch)
            if kind == "Map":
                scope(f"{where}.{name}.ItemProcessor", state.get("ItemProcessor", {}))
        reachable: set[str] = set()
        todo = [start]
        while todo:
            cur = todo.pop()
            if cur in reachable or cur not in states:
                continue
            reachable.add(cur)
            todo.extend(_targets(states[cur]))
        for name in states:
            if name not in reachable:
                problems.append(f"{where}.{name}: unreachable")

    scope("$", definition)
    if problems:
        raise CompileError("compiled definition failed the structural check: " + "; ".join(problems))
