"""The run document every state passes on, and the pure rules for how a node's end changes it.

``{"run": {...}, "input": {...}, "state": {...}, "results": {"<node>": output}, "loops": {"<node>": n},
"sd": {...}}``: ``state`` starts as ``input``; ``sd`` holds every key a node wrote into ``state`` (so a
Parallel join can rebuild ``state`` as ``input`` merged with the branches' ``sd``); ``loops`` counts the
runs of nodes inside loop bodies (their iteration numbers) and, under ``<head>@loop``, each loop's runs
since it was entered (what ``max_iterations`` bounds). The executor
calls these functions; the compiler relies on exactly these keys.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from statemachine.errors import DataError
from statemachine.references import get_field, type_name

if TYPE_CHECKING:
    from statemachine.protocol import NodeContext
    from statemachine.spec import GraphSpec

DOC_KEYS = ("run", "input", "state", "results", "loops", "sd")
CACHE_KEYS = "cache"
"""A cached ``lambda:`` node's cache key between its lookup and its record (``{node: key}``; the protocol's
``CACHE_DOC_KEY``): dropped when the node ends."""


def _ended(doc: Mapping[str, Any], node: str) -> dict[str, Any]:
    """``doc`` without what lives only while a node runs: a caught ``failure`` and the node's cache key."""
    new = {key: value for key, value in doc.items() if key not in ("failure", CACHE_KEYS)}
    pending = {k: v for k, v in (doc.get(CACHE_KEYS) or {}).items() if k != node}
    if pending:
        new[CACHE_KEYS] = pending
    return new


def initial_document(spec: GraphSpec, run: Mapping[str, Any], input: Mapping[str, Any]) -> dict[str, Any]:
    """The execution input for a run of ``spec``: ``run`` is ``{run_id, graph_id, version}``."""
    del spec  # the document's shape does not depend on the graph today; kept for future per-graph keys
    if not isinstance(input, Mapping):
        raise DataError(f"a run's input must be a JSON object, got {type_name(input)}")
    data = copy.deepcopy(dict(input))
    return {
        "run": dict(run),
        "input": data,
        "state": copy.deepcopy(data),
        "results": {},
        "loops": {},
        "sd": {},
    }


def resumed_document(
    spec: GraphSpec, run: Mapping[str, Any], input: Mapping[str, Any], resumes: int, done: Mapping[str, int]
) -> dict[str, Any]:
    """The execution input of a run's ``resumes``-th resume: the run's own input again, ``run.resumes`` (which
    execution this is: the executor replays nodes that succeeded and restarts the others by it), and
    ``run.done``: for each ``lambda:`` node that succeeded, how many of its iterations did, so the compiled
    ``<node>.resumed`` Choice skips invoking the function again (``loops.<node>`` starts at 0, which counts
    as no iteration yet, for the in-loop comparison)."""
    doc = initial_document(spec, {**run, "resumes": resumes}, input)
    if done:
        doc["run"]["done"] = dict(done)
        doc["loops"] = {node: 0 for node in done}
    return doc


def scope(doc: Mapping[str, Any], item: Any = None, *, with_item: bool = False) -> dict[str, Any]:
    """The names references resolve against: ``input``, ``state``, ``results`` (and ``item`` in foreach)."""
    out: dict[str, Any] = {
        "input": doc.get("input", {}),
        "state": doc.get("state", {}),
        "results": doc.get("results", {}),
    }
    if with_item:
        out["item"] = item
    return out


def iteration(doc: Mapping[str, Any], ctx: NodeContext) -> int:
    """The iteration number of the node's run that is about to happen (1 outside loops)."""
    if not ctx.in_loop:
        return 1
    return int((doc.get("loops") or {}).get(ctx.node, 0)) + 1


def state_updates(ctx: NodeContext, output: Any) -> dict[str, Any]:
    """The keys a node's output writes into ``state`` (``update_state``: true merges, a mapping picks paths)."""
    rule = ctx.update_state
    if rule is False:
        return {}
    if rule is True:
        if not isinstance(output, Mapping):
            raise DataError(
                f"node {ctx.node!r} has update_state: true but its output is {type_name(output)}, not an object"
            )
        return dict(output)
    updates: dict[str, Any] = {}
    for key, path in rule.items():
        try:
            updates[key] = get_field(output, path)
        except DataError as exc:
            raise DataError(f"node {ctx.node!r}: update_state {key!r} -> {path!r}: {exc.message}") from None
    return updates


def _cleared(doc: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    results = dict(doc.get("results") or {})
    for node in ctx.clears:
        results.pop(node, None)
    return results


def _count(new: dict[str, Any], doc: Mapping[str, Any], ctx: NodeContext) -> None:
    """Loop bookkeeping: the node's iteration number, its loop's bound counter, nested loops' resets."""
    if not (ctx.in_loop or ctx.loop_counter or ctx.resets):
        return
    loops = dict(doc.get("loops") or {})
    if ctx.in_loop:
        loops[ctx.node] = int(loops.get(ctx.node, 0)) + 1
    for key in ctx.resets:
        loops[key] = 0
    if ctx.loop_counter:
        loops[ctx.loop_counter] = int(loops.get(ctx.loop_counter, 0)) + 1
    new["loops"] = loops


def apply_result(doc: Mapping[str, Any], ctx: NodeContext, output: Any) -> dict[str, Any]:
    """The document after ``ctx.node`` finished with ``output`` (already offloaded where needed)."""
    new = _ended(doc, ctx.node)
    new["results"] = _cleared(doc, ctx) | {ctx.node: output}
    _count(new, doc, ctx)
    updates = state_updates(ctx, output)
    if updates:
        new["state"] = {**(doc.get("state") or {}), **updates}
        new["sd"] = {**(doc.get("sd") or {}), **updates}
    return new


def apply_failure(doc: Mapping[str, Any], ctx: NodeContext) -> dict[str, Any]:
    """The document after an ``optional`` node failed: its output is ``null``, the run goes on."""
    new = _ended(doc, ctx.node)
    new["results"] = _cleared(doc, ctx) | {ctx.node: None}
    _count(new, doc, ctx)
    return new


def skipped_nodes(spec: GraphSpec, doc: Mapping[str, Any]) -> list[str]:
    """Nodes of a SUCCEEDED run that never ran (no result in the final document): they were SKIPPED."""
    results = doc.get("results") or {}
    return [node.id for node in spec.nodes if node.id not in results]
