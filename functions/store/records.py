"""Node result items: idempotent writes by the executor, reads for the API.

Every status change of a node item is one conditional update that also stamps the event announcing it
(``last_event_json``, built by ``table.event_stamp``). The executor writes nothing else: the stream
function (functions/stream) turns each new stamp into a numbered event item. A redelivered invocation
fails the condition, so it neither duplicates the event nor overwrites a terminal status; the failed
write returns the item as it stands (``ReturnValuesOnConditionCheckFailure``), so answering a
redelivery costs no read either. Events without a status change (``LOG``) are a ``DEDUP#<key>`` item
put once, which the stream function numbers in the same way.

A resumed run (``POST /runs/{id}/resume``) runs as a new execution whose document carries its resume
number ``n``: every write of that execution passes ``resume=n``, stored on the item as ``resume`` (absent
for the first execution). A node's writes hold only for the execution that owns its record (same
``resume``), so a late delivery from an older execution changes nothing; a record an older execution left
FAILED, CANCELLED or RUNNING is restarted by the first start of a newer one (``_restart``), and a SUCCEEDED
record is never touched: the newer execution replays its output.

Single-item conditional writes rather than transactions: they cost half the write units, and moto's
transaction rollback restores a whole-table snapshot, which loses concurrent writes in the local cloud.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from functions.errors import StoreError
from functions.store.cache import cache_pk, cache_sk
from functions.store.table import (
    TableHandle,
    add_set,
    conditional_update,
    dump_json,
    event_stamp,
    ms_between,
    node_sk,
    now_iso,
    put_once,
    run_pk,
    with_expiry,
)
from statemachine.status import NODE_TERMINAL, NodeStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from mypy_boto3_dynamodb.service_resource import Table

NODE_PREFIX = "NODE#"
EVENT_PREFIX = "EVENT#"
DEDUP_PREFIX = "DEDUP#"
ITEM_PREFIX = "ITEM#"
MAX_MESSAGE = 4000

_NOT_TERMINAL = "(attribute_not_exists(#status) OR NOT #status IN (:t0, :t1, :t2, :t3))"
_TERMINAL_VALUES = {f":t{i}": s for i, s in enumerate(NODE_TERMINAL)}
_OLDER_UNFINISHED = "(#status <> :ok AND (attribute_not_exists(#rs) OR #rs < :rs))"
"""A record an older execution of the run (lower ``resume``) left unfinished or failed."""


@dataclass
class NodeRecord:
    """One node result item (``NODE#<node>#<iteration>``), parsed; ``output`` may hold references."""

    node: str
    iteration: int
    status: str
    attempts: int
    tool: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: int | None = None
    tool_ms: int | None = None
    output: Any = None
    error: dict[str, str] | None = None
    items_total: int | None = None
    items_done: int | None = None
    failed_attempt: int | None = None
    index: int | None = None
    starts: int = 0
    """Attempts the executor began (Step Functions' retry count also counts throttled invokes, which never ran)."""
    cached: bool = False
    """The output was reused from an earlier run (``cache``), not made by running the tool."""
    cached_from: dict[str, Any] | None = None
    """Which result it was reused from: ``{run_id, node, iteration, finished_at}``."""
    items_cached: int | None = None
    """A cached ``foreach`` node: how many of its items were reused."""
    prompt: str | None = None
    """A person's step (``human.*``): what they are asked, references resolved."""
    waiting_since: str | None = None
    """A person's step: when it began waiting."""
    resume: int = 0
    """The resume number of the execution that last started the record (0: the run's first execution)."""

    @property
    def terminal(self) -> bool:
        return self.status in NODE_TERMINAL


@dataclass(frozen=True)
class Outcome:
    """What a conditional status change did: ``done`` is False for a redelivery or a stale attempt.

    ``node`` is the item after the change when the write returns it, or the item as it stood when the
    condition failed (None if it did not exist). Truthy when the change was made.
    """

    done: bool
    node: NodeRecord | None = None

    @property
    def started(self) -> bool:
        return self.done

    def __bool__(self) -> bool:
        return self.done


StartOutcome = Outcome


def item_sk(node: str, iteration: int, index: int) -> str:
    """The sort key of one ``foreach`` item's record: ``ITEM#<node>#<iteration:04d>#<index:06d>``."""
    return f"{ITEM_PREFIX}{node}#{iteration:04d}#{index:06d}"


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


_json = dump_json


def parse_node(item: dict[str, Any]) -> NodeRecord:
    """A node item as stored → ``NodeRecord`` (JSON strings parsed, Decimals to int).

    ``duration_ms`` is finished - started (first attempt): stored by writers that know both, else
    computed here, so that finishing a node needs no read of when it started.
    """
    # The key says which node and iteration; attributes may be missing from a partial item.
    key_parts = str(item.get("sk", "")).split("#")
    started_at = item.get("started_at")
    finished_at = item.get("finished_at")
    duration = _int(item.get("duration_ms"))
    if duration is None and item.get("status") in NODE_TERMINAL:
        duration = ms_between(started_at, finished_at)
    return NodeRecord(
        node=str(item.get("node") or (key_parts[1] if len(key_parts) > 2 else "")),
        iteration=int(item.get("iteration") or (key_parts[2] if len(key_parts) > 2 else 0)),
        status=item.get("status", NodeStatus.PENDING.value),
        attempts=int(item.get("attempts", 0)),
        tool=item.get("tool"),
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=duration,
        tool_ms=_int(item.get("tool_ms")),
        output=json.loads(item["output_json"]) if "output_json" in item else None,
        error=json.loads(item["error_json"]) if "error_json" in item else None,
        items_total=_int(item.get("items_total")),
        items_done=_items_done(item),
        failed_attempt=_int(item.get("failed_attempt")),
        index=_int(item.get("index")),
        starts=int(item.get("starts", 0)),
        cached=bool(item.get("cached", False)),
        cached_from=json.loads(item["cached_from_json"]) if "cached_from_json" in item else None,
        items_cached=_int(item.get("items_cached")),
        prompt=item.get("prompt"),
        waiting_since=item.get("waiting_since"),
        resume=int(item.get("resume") or 0),
    )


def _items_done(item: dict[str, Any]) -> int | None:
    """Finished items of a foreach node: counted per batch (``items_done``) or per item (``items_done_set``)."""
    if "items_done" not in item and "items_done_set" not in item:
        return None
    return max(int(item.get("items_done") or 0), len(item.get("items_done_set") or ()))


def restartable(record: NodeRecord | None, resume: int) -> bool:
    """Whether an execution with resume number ``resume`` may start ``record`` afresh: an older execution
    left it unfinished or failed (a SUCCEEDED record is replayed, never restarted)."""
    return record is not None and resume > record.resume and record.status != NodeStatus.SUCCEEDED


def _owned(resume: int, update: dict[str, Any]) -> str:
    """The condition that the record belongs to the execution with resume number ``resume``."""
    update["ExpressionAttributeNames"]["#rs"] = "resume"
    if resume == 0:
        return "attribute_not_exists(#rs)"
    update["ExpressionAttributeValues"][":rs"] = resume
    return "#rs = :rs"


def _prefixed(run_id: str, prefix: str) -> dict[str, Any]:
    """``Query`` arguments for a run's items whose sort key starts with ``prefix``."""
    return {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": run_pk(run_id), ":prefix": prefix},
    }


def _failure(error: Mapping[str, Any] | None) -> str:
    """How an event's text ends with the error it reports: ``": <code>: <message>"`` (nothing without one)."""
    return f": {error.get('code')}: {error.get('message')}" if error else ""


def _node_event(
    sk: str,
    type_: str,
    at: str,
    text: str,
    *,
    node: str | None,
    iteration: int | None,
    attempt: int | None = None,
    error: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The event a write of the records module stamps (``table.event_stamp``), its error as ``error_json``."""
    error_json = _json(dict(error)) if error else None
    return event_stamp(
        sk, type_, at, text, node=node, attempt=attempt, iteration=iteration, error_json=error_json, **extra
    )


def _resumed_stamp(stamp: dict[str, Any], resume: int) -> dict[str, Any]:
    """A stamp of a resumed execution: its ``eid`` names the resume, so a transition it repeats from an
    older execution (same item, type and attempt) is numbered again."""
    return {**stamp, "eid": f"{stamp['eid']}#r{resume}"} if resume else stamp


class Records(TableHandle):
    """Writes and reads node items and run events of one table (inject ``table`` in tests)."""

    def __init__(self, table: Table | None = None) -> None:
        super().__init__(table)

    # -- events ---------------------------------------------------------------------------------

    def put_event(
        self,
        run_id: str,
        type_: str,
        *,
        node: str | None = None,
        attempt: int | None = None,
        iteration: int | None = None,
        message: str = "",
        error: dict[str, str] | None = None,
        key: str | None = None,
    ) -> bool:
        """Append an event that changes no status: a ``DEDUP#<key>`` item carrying it, put once per run
        (the stream function numbers it). False when ``key`` was already used."""
        sk = f"{DEDUP_PREFIX}{key or uuid.uuid4().hex}"
        stamp = _node_event(
            sk, type_, now_iso(), message[:MAX_MESSAGE], node=node, iteration=iteration, attempt=attempt, error=error
        )
        return put_once(self.table, {"pk": run_pk(run_id), "sk": sk}, stamp=stamp).done

    # -- node items -----------------------------------------------------------------------------

    def get_node(self, run_id: str, node: str, iteration: int) -> NodeRecord | None:
        return self._get(run_id, node_sk(node, iteration))

    def latest_iteration(self, run_id: str, node: str) -> int | None:
        """The newest iteration of ``node`` that has a record in the run, or None."""
        newest = self._query({**_prefixed(run_id, f"{NODE_PREFIX}{node}#"), "ScanIndexForward": False}, limit=1)
        return newest[0].iteration if newest else None

    def get_item(self, run_id: str, node: str, iteration: int, index: int) -> NodeRecord | None:
        """One ``foreach`` item's record, or None before it started."""
        return self._get(run_id, item_sk(node, iteration, index))

    def list_nodes(self, run_id: str) -> list[NodeRecord]:
        """Every node item of a run, ordered by node id then iteration."""
        return self._query(_prefixed(run_id, NODE_PREFIX))

    def start_attempt(
        self,
        run_id: str,
        node: str,
        iteration: int,
        attempt: int,
        *,
        tool: str,
        items_total: int | None = None,
        at: str | None = None,
        resume: int = 0,
    ) -> Outcome:
        """Mark the node RUNNING for ``attempt`` (stamping ``NODE_STARTED``), unless this attempt was seen already.

        One write: the new item comes back with it (``starts`` counts the attempts begun); a redelivery
        (this attempt or a later one recorded, or the node already terminal) changes nothing and gets the
        item as it stands. ``at`` overrides the start time (a ``lambda:`` node started when its Task was
        entered). ``resume``: see the module's docstring (a second write restarts a record an older
        execution left unfinished).
        """
        at = at or now_iso()
        sk = node_sk(node, iteration)
        update = self._start_update(run_id, sk, node, iteration, attempt, tool, at, resume)
        if items_total is not None:
            update["UpdateExpression"] += ", items_total = :total"
            update["ExpressionAttributeValues"][":total"] = items_total
        text = f"{node} started {tool} (attempt {attempt})"
        stamp = _node_event(sk, "NODE_STARTED", at, text, node=node, iteration=iteration, attempt=attempt)
        outcome = self._transition(update, stamp, returns="ALL_NEW", resume=resume)
        if outcome.done or not restartable(outcome.node, resume):
            return outcome
        restart = self._restart_update(update, resume)
        return self._transition(restart, stamp, returns="ALL_NEW", resume=resume)

    def succeed_attempt(
        self,
        run_id: str,
        node: str,
        iteration: int,
        attempt: int,
        *,
        output: Any,
        tool_ms: int | None = None,
        message: str = "",
        cache_key: str | None = None,
        cached_from: Mapping[str, Any] | None = None,
        items_cached: int | None = None,
        cached: bool = False,
        resume: int = 0,
    ) -> Outcome:
        """Mark the node SUCCEEDED with its (possibly referenced) output, stamping ``NODE_SUCCEEDED``.

        Not done when the node was already terminal (a redelivered invocation finished first) or a later
        attempt has started since (this one is stale: Step Functions no longer waits for it); the
        outcome then carries the item as it stands. ``cache_key``: the tool ran for a node with ``cache``, so
        the same write makes this result the key's newest cache entry (``functions.store.cache``).
        ``cached_from``: the output was reused from that earlier result (``cached``; the event says so).
        A cached ``foreach`` node records how many of its items were reused (``items_cached``); ``cached``
        when all were.
        """
        at = now_iso()
        sk = node_sk(node, iteration)
        update = self._succeed_update(run_id, sk, attempt, output, tool_ms, at, resume)
        _cache_fields(update, run_id, at, cache_key, cached_from)
        cached = cached or cached_from is not None
        if items_cached is not None:
            update["UpdateExpression"] = add_set(update["UpdateExpression"], "items_cached = :ic")
            update["ExpressionAttributeValues"][":ic"] = items_cached
        if cached and cached_from is None:
            update["UpdateExpression"] = add_set(update["UpdateExpression"], "cached = :on")
            update["ExpressionAttributeValues"][":on"] = True
        if cached_from is not None:
            origin, made = cached_from.get("run_id"), cached_from.get("finished_at")
            message = message or f"{node} succeeded from the cache (the output of run {origin}, made {made})"
        ran = f", tool ran {tool_ms} ms" if tool_ms is not None else ""
        text = message or f"{node} succeeded (attempt {attempt}{ran})"
        stamp = _node_event(
            sk,
            "NODE_SUCCEEDED",
            at,
            text,
            node=node,
            iteration=iteration,
            attempt=attempt,
            cached=True if cached else None,
        )
        return self._transition(update, stamp, resume=resume)

    def fail_attempt(
        self,
        run_id: str,
        node: str,
        iteration: int,
        attempt: int,
        *,
        error: dict[str, str],
        final: bool,
        message: str = "",
        resume: int = 0,
    ) -> Outcome:
        """Record a failed attempt: ``NODE_RETRYING`` (status stays RUNNING) or, when ``final``, ``NODE_FAILED``.

        Not done when this attempt's failure was already recorded, a later attempt started, or the node
        is already terminal.
        """
        at = now_iso()
        sk = node_sk(node, iteration)
        update = self._fail_update(run_id, sk, attempt, error, final, at, resume)
        type_ = "NODE_FAILED" if final else "NODE_RETRYING"
        verb = "failed" if final else "failed, will retry"
        text = message or f"{node} {verb} (attempt {attempt}){_failure(error)}"
        stamp = _node_event(sk, type_, at, text, node=node, iteration=iteration, attempt=attempt, error=error)
        return self._transition(update, stamp, resume=resume)

    def fail_node(
        self,
        run_id: str,
        node: str,
        iteration: int,
        *,
        tool: str,
        error: dict[str, str],
        message: str = "",
        resume: int = 0,
    ) -> Outcome:
        """Mark a node FAILED with an error Step Functions raised (``States.Timeout``...) unless already terminal.

        Used for ``optional`` nodes whose failure was caught; stamps ``NODE_FAILED`` once (its attempt is
        the item's ``attempts``, filled in by the stream function). Creates the item when the executor
        never started (e.g. every attempt timed out before recording).
        """
        at = now_iso()
        sk = node_sk(node, iteration)
        values: dict[str, Any] = {
            ":node": node,
            ":it": iteration,
            ":tool": tool,
            ":failed": NodeStatus.FAILED,
            ":at": at,
            ":err": _json(error),
            ":one": 1,
            **_TERMINAL_VALUES,
        }
        sets = [
            "#node = :node",
            "iteration = :it",
            "tool = if_not_exists(tool, :tool)",
            "#status = :failed",
            "finished_at = :at",
            "error_json = :err",
            "attempts = if_not_exists(attempts, :one)",
            "started_at = if_not_exists(started_at, :at)",
        ]
        update: dict[str, Any] = {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "ExpressionAttributeNames": {"#status": "status", "#node": "node"},
            "ExpressionAttributeValues": values,
        }
        condition = f"attribute_not_exists(pk) OR ({_NOT_TERMINAL} AND {_owned(resume, update)})"
        if resume:  # a record an older execution left is this execution's to fail
            sets.append("#rs = :rs")
            values[":ok"] = NodeStatus.SUCCEEDED
            condition += f" OR {_OLDER_UNFINISHED}"
        # a person's step that timed out leaves the WAITING index (functions/store/waits.py)
        update["UpdateExpression"] = "SET " + ", ".join(sets) + " REMOVE gsi1pk, gsi1sk"
        update["ConditionExpression"] = condition
        text = message or f"{node} failed{_failure(error)}"
        stamp = _node_event(sk, "NODE_FAILED", at, text, node=node, iteration=iteration, error=error)
        return self._transition(update, stamp, resume=resume)

    # -- a run's end (functions/runs_sync.settle) ------------------------------------------------

    def end_running_nodes(
        self,
        run_id: str,
        status: str,
        at: str,
        errors: Mapping[str, dict[str, Any]] | None = None,
        default_error: dict[str, Any] | None = None,
        resume: int | None = None,
    ) -> list[str]:
        """Mark node records still RUNNING (or WAITING for a person) as ``status`` with their error (by node,
        else ``default_error``), once the run's execution ended.

        Each change is conditional on the node still being RUNNING or WAITING (and, given the ``resume``
        number of the execution that ended, on no later execution having started it); a FAILED one writes its
        ``NODE_FAILED`` event once. Repeating this writes nothing new. Returns the nodes changed.
        """
        changed: list[str] = []
        for record in self._query(_prefixed(run_id, NODE_PREFIX), consistent=True):
            if record.status not in (NodeStatus.RUNNING, NodeStatus.WAITING):
                continue
            if resume is not None and record.resume > resume:
                continue  # a later execution of the resumed run has started it
            sk = node_sk(record.node, record.iteration)
            error = (errors or {}).get(record.node, default_error)
            values: dict[str, Any] = {":s": status, ":r": NodeStatus.RUNNING, ":w": NodeStatus.WAITING, ":f": at}
            sets = ["#s = :s", "finished_at = :f"]
            if error is not None:
                sets.append("error_json = :e")
                values[":e"] = _json(error)
            if record.started_at is not None:
                sets.append("duration_ms = :d")
                values[":d"] = ms_between(record.started_at, at) or 0
            update: dict[str, Any] = {
                "Key": {"pk": run_pk(run_id), "sk": sk},
                "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE gsi1pk, gsi1sk",
                "ConditionExpression": "#s IN (:r, :w)",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": values,
            }
            if resume is not None:
                update["ConditionExpression"] += " AND (attribute_not_exists(#rs) OR #rs <= :rs)"
                update["ExpressionAttributeNames"]["#rs"] = "resume"
                values[":rs"] = resume
            stamp = None
            if status == NodeStatus.FAILED:
                stamp = _node_event(
                    sk,
                    "NODE_FAILED",
                    now_iso(),
                    f"{record.node} failed{_failure(error)}",
                    node=record.node,
                    iteration=record.iteration,
                    attempt=record.attempts,
                    error=error,
                )
            if self._write(update, stamp=_resumed_stamp(stamp, record.resume) if stamp else None):
                changed.append(record.node)
        return changed

    def skip_node(self, run_id: str, node: str, *, at: str) -> bool:
        """Record SKIPPED, with ``NODE_SKIPPED``, a node that never ran in a run that succeeded (once)."""
        text = f"{node} skipped: its conditions were not met"
        return self._put_unstarted(run_id, node, NodeStatus.SKIPPED, "NODE_SKIPPED", text, at=at)

    def fail_unstarted(self, run_id: str, node: str, *, error: dict[str, str], at: str) -> bool:
        """Record FAILED, with no attempt, a node whose state failed before its tool ever ran (once)."""
        text = f"{node} failed{_failure(error)}"
        return self._put_unstarted(run_id, node, NodeStatus.FAILED, "NODE_FAILED", text, at=at, error=error)

    def _put_unstarted(
        self,
        run_id: str,
        node: str,
        status: str,
        type_: str,
        text: str,
        *,
        at: str,
        error: dict[str, str] | None = None,
    ) -> bool:
        """Create the record of a node that never started, stamped with its event, unless it has one."""
        sk = node_sk(node, 1)
        item = {"pk": run_pk(run_id), "sk": sk, "node": node, "iteration": 1, "status": status, "attempts": 0}
        item["finished_at"] = at
        if error is not None:
            item["error_json"] = _json(error)
        stamp = _node_event(sk, type_, now_iso(), text, node=node, iteration=1, error=error)
        return put_once(self.table, item, stamp=stamp).done

    # -- foreach items --------------------------------------------------------------------------

    def start_item(
        self, run_id: str, node: str, iteration: int, index: int, attempt: int, *, tool: str, resume: int = 0
    ) -> Outcome:
        """Mark one ``foreach`` item RUNNING for ``attempt`` (no event: the node's ``NODE_STARTED`` covers it)."""
        at = now_iso()
        sk = item_sk(node, iteration, index)
        update = self._start_update(run_id, sk, node, iteration, attempt, tool, at, resume)
        update["UpdateExpression"] += ", #index = :index"
        update["ExpressionAttributeNames"]["#index"] = "index"
        update["ExpressionAttributeValues"][":index"] = index
        outcome = self._write(update, returns="ALL_NEW")
        if outcome.done or not restartable(outcome.node, resume):
            return outcome
        return self._write(self._restart_update(update, resume), returns="ALL_NEW")

    def succeed_item(
        self,
        run_id: str,
        node: str,
        iteration: int,
        index: int,
        attempt: int,
        *,
        output: Any,
        tool_ms: int | None = None,
        cache_key: str | None = None,
        cached_from: Mapping[str, Any] | None = None,
        resume: int = 0,
    ) -> Outcome:
        """Mark an item SUCCEEDED with its output and count it in the node's ``items_done`` (once per index).
        ``cache_key`` / ``cached_from`` as for :meth:`succeed_attempt`."""
        at = now_iso()
        sk = item_sk(node, iteration, index)
        update = self._succeed_update(run_id, sk, attempt, output, tool_ms, at, resume)
        _cache_fields(update, run_id, at, cache_key, cached_from)
        outcome = self._write(update)
        if outcome.done or (outcome.node is not None and outcome.node.status == NodeStatus.SUCCEEDED):
            self.count_items(run_id, node, iteration, [index])
        return outcome

    def count_items(self, run_id: str, node: str, iteration: int, indexes: Iterable[int]) -> None:
        """Count finished items in the node's ``items_done`` (a string set: counting twice changes nothing).

        Nothing happens while the node item does not exist yet (its first item has not started).
        """
        values = {f"{i:06d}" for i in indexes}
        if not values:
            return
        conditional_update(
            self.table,
            {
                "Key": {"pk": run_pk(run_id), "sk": node_sk(node, iteration)},
                "UpdateExpression": "ADD items_done_set :indexes",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":indexes": values},
            },
        )

    def fail_item(
        self,
        run_id: str,
        node: str,
        iteration: int,
        index: int,
        attempt: int,
        *,
        error: dict[str, str],
        final: bool,
        resume: int = 0,
    ) -> Outcome:
        """Record an item's failed attempt; a retry is announced by ``NODE_RETRYING`` naming the item.

        A final failure stamps no event here: the caller fails the node (``fail_attempt``), which does.
        """
        at = now_iso()
        sk = item_sk(node, iteration, index)
        update = self._fail_update(run_id, sk, attempt, error, final, at, resume)
        if final:
            return self._write(update)
        text = f"{node} item {index} failed, will retry (attempt {attempt}){_failure(error)}"
        stamp = _node_event(sk, "NODE_RETRYING", at, text, node=node, iteration=iteration, attempt=attempt, error=error)
        return self._transition(update, stamp, resume=resume)

    def put_succeeded_items(
        self, run_id: str, node: str, iteration: int, items: list[ItemResult], *, resume: int = 0
    ) -> None:
        """Write finished items of one batch, 25 to a request (``BatchWriteItem``).

        Unconditional puts: a batch is the only writer of its items while it runs, and a redelivered batch
        writes the same items SUCCEEDED again. The caller counts them (``count_batch``).
        """
        if not items:
            return
        pk = run_pk(run_id)
        requests = []
        for result in items:
            item: dict[str, Any] = {
                "pk": pk,
                "sk": item_sk(node, iteration, result.index),
                "node": node,
                "iteration": iteration,
                "index": result.index,
                "tool": result.tool,
                "status": NodeStatus.SUCCEEDED,
                "attempts": result.attempt,
                "starts": result.attempt,
                "started_at": result.started_at,
                "attempt_started_at": result.attempt_started_at or result.started_at,
                "finished_at": result.finished_at,
                "output_json": _json(result.output),
            }
            if result.tool_ms is not None:
                item["tool_ms"] = result.tool_ms
            if result.cache_key:
                item.update(gsi1pk=cache_pk(result.cache_key), gsi1sk=cache_sk(result.finished_at, run_id))
            if result.cached_from is not None:
                item.update(cached=True, cached_from_json=_json(result.cached_from))
            duration = ms_between(result.started_at, result.finished_at)
            if duration is not None:
                item["duration_ms"] = duration
            if resume:
                item["resume"] = resume
            requests.append({"PutRequest": {"Item": with_expiry(item)}})
        client = self.table.meta.client
        for chunk in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table.name: requests[chunk : chunk + 25]}
            for _ in range(8):
                response = client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise StoreError(f"DynamoDB left {len(pending.get(self.table.name, []))} item records unwritten")

    def count_batch(self, run_id: str, node: str, iteration: int, start: int, done: int) -> None:
        """Add a batch's ``done`` finished items to the node's ``items_done``, once per batch (``batches_done``).

        A set of batch starts, not of item indexes: the node item stays small whatever the list's length.
        """
        conditional_update(
            self.table,
            {
                "Key": {"pk": run_pk(run_id), "sk": node_sk(node, iteration)},
                "UpdateExpression": "ADD batches_done :batch, items_done :done",
                "ConditionExpression": "attribute_exists(pk) AND NOT contains(batches_done, :start)",
                "ExpressionAttributeValues": {":batch": {f"{start:06d}"}, ":done": done, ":start": f"{start:06d}"},
            },
        )

    def set_items_done(self, run_id: str, node: str, iteration: int, done: int) -> None:
        """Record that all ``done`` items of the node have finished (its ``collect``)."""
        conditional_update(
            self.table,
            {
                "Key": {"pk": run_pk(run_id), "sk": node_sk(node, iteration)},
                "UpdateExpression": "SET items_done = :done",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": {":done": done},
            },
        )

    def items_between(self, run_id: str, node: str, iteration: int, first: int, last: int) -> dict[int, NodeRecord]:
        """The item records with index ``first``..``last`` (inclusive) that exist, by index (strongly consistent)."""
        query = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {
                ":pk": run_pk(run_id),
                ":a": item_sk(node, iteration, first),
                ":b": item_sk(node, iteration, last),
            },
        }
        return {r.index: r for r in self._query(query, consistent=True) if r.index is not None}

    def items_page(
        self, run_id: str, node: str, iteration: int, *, after: int | None, limit: int
    ) -> tuple[list[NodeRecord], bool]:
        """Up to ``limit`` item records with an index above ``after``, in index order; True when more follow."""
        query = _prefixed(run_id, f"{ITEM_PREFIX}{node}#{iteration:04d}#")
        if after is not None:
            query["ExclusiveStartKey"] = {"pk": run_pk(run_id), "sk": item_sk(node, iteration, after)}
        # one more than asked: whether a next page exists is known now, not a page later
        records = self._query(query, limit=limit + 1)
        return records[:limit], len(records) > limit

    def list_items(self, run_id: str, node: str, iteration: int) -> list[NodeRecord]:
        """The item records of a ``foreach`` node run, in index order (strongly consistent)."""
        return self._query(_prefixed(run_id, f"{ITEM_PREFIX}{node}#{iteration:04d}#"), consistent=True)

    # -- update builders ------------------------------------------------------------------------

    def _get(self, run_id: str, sk: str) -> NodeRecord | None:
        item = self.table.get_item(Key={"pk": run_pk(run_id), "sk": sk}, ConsistentRead=True).get("Item")
        return parse_node(item) if item else None

    def _query(self, query: dict[str, Any], *, consistent: bool = False, limit: int | None = None) -> list[NodeRecord]:
        """The records a ``Query`` finds, following its pages (``limit``: at most that many)."""
        kwargs = {**query, "ConsistentRead": True} if consistent else dict(query)
        records: list[NodeRecord] = []
        while limit is None or len(records) < limit:
            if limit is not None:
                kwargs["Limit"] = limit - len(records)
            response = self.table.query(**kwargs)
            records.extend(parse_node(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return records

    def _start_update(
        self,
        run_id: str,
        sk: str,
        node: str,
        iteration: int,
        attempt: int,
        tool: str,
        at: str,
        resume: int = 0,
        *,
        status: str = NodeStatus.RUNNING,
    ) -> dict[str, Any]:
        """The update that begins ``attempt`` of a record: ``status`` RUNNING, or WAITING for a person's step
        (``Waits.mark_waiting``, which adds its fields). The expression is one SET clause."""
        sets = [
            "#node = :node",
            "iteration = :it",
            "tool = :tool",
            "#status = :begun",
            "attempts = :a",
            "attempt_started_at = :at",
            "started_at = if_not_exists(started_at, :at)",
            "starts = if_not_exists(starts, :zero) + :one",
        ]
        update: dict[str, Any] = {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "ExpressionAttributeNames": {"#status": "status", "#node": "node"},
            "ExpressionAttributeValues": {
                ":node": node,
                ":it": iteration,
                ":tool": tool,
                ":begun": status,
                ":a": attempt,
                ":at": at,
                ":zero": 0,
                ":one": 1,
                **_TERMINAL_VALUES,
            },
        }
        owned = _owned(resume, update)
        if resume:
            sets.append("#rs = :rs")
        update["UpdateExpression"] = "SET " + ", ".join(sets)
        update["ConditionExpression"] = f"attribute_not_exists(pk) OR ({_NOT_TERMINAL} AND attempts < :a AND {owned})"
        return update

    @staticmethod
    def _restart_update(start: dict[str, Any], resume: int) -> dict[str, Any]:
        """The start ``start`` describes, as a fresh start of a record an older execution left unfinished
        or failed: its attempts, error, output and counts of that execution are cleared."""
        expression = (
            start["UpdateExpression"]
            .replace("started_at = if_not_exists(started_at, :at)", "started_at = :at")
            .replace("starts = if_not_exists(starts, :zero) + :one", "starts = :one")
        )
        removed = "error_json, failed_attempt, finished_at, duration_ms, tool_ms, output_json, batches_done, items_done"
        values = {k: v for k, v in start["ExpressionAttributeValues"].items() if k not in _TERMINAL_VALUES}
        values.pop(":zero", None)
        return {
            **start,
            "UpdateExpression": f"{expression} REMOVE {removed}",
            "ConditionExpression": f"attribute_exists(pk) AND {_OLDER_UNFINISHED}",
            "ExpressionAttributeValues": {**values, ":ok": NodeStatus.SUCCEEDED, ":rs": resume},
        }

    def _succeed_update(
        self, run_id: str, sk: str, attempt: int, output: Any, tool_ms: int | None, at: str, resume: int = 0
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":ok": NodeStatus.SUCCEEDED,
            ":a": attempt,
            ":at": at,
            ":out": _json(output),
            **_TERMINAL_VALUES,
        }
        sets = ["#status = :ok", "attempts = :a", "finished_at = :at", "output_json = :out"]
        if tool_ms is not None:
            sets.append("tool_ms = :tm")
            values[":tm"] = tool_ms
        update: dict[str, Any] = {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE error_json",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
        owned = _owned(resume, update)
        update["ConditionExpression"] = f"attribute_exists(pk) AND {_NOT_TERMINAL} AND attempts <= :a AND {owned}"
        return update

    def _fail_update(
        self, run_id: str, sk: str, attempt: int, error: dict[str, str], final: bool, at: str, resume: int = 0
    ) -> dict[str, Any]:
        values: dict[str, Any] = {":a": attempt, ":err": _json(error), **_TERMINAL_VALUES}
        sets = ["attempts = :a", "failed_attempt = :a", "error_json = :err"]
        if final:
            sets += ["#status = :failed", "finished_at = :at"]
            values.update({":failed": NodeStatus.FAILED, ":at": at})
        update: dict[str, Any] = {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
        owned = _owned(resume, update)
        update["ConditionExpression"] = (
            f"attribute_exists(pk) AND {_NOT_TERMINAL} AND attempts <= :a"
            f" AND (attribute_not_exists(failed_attempt) OR failed_attempt < :a) AND {owned}"
        )
        return update

    # -- plumbing -------------------------------------------------------------------------------

    def _transition(
        self,
        update: dict[str, Any],
        stamp: dict[str, Any],
        returns: Literal["NONE", "ALL_NEW"] = "NONE",
        resume: int = 0,
    ) -> Outcome:
        """A status change stamped with the event announcing it; the stream function numbers the event."""
        return self._write(update, returns=returns, stamp=_resumed_stamp(stamp, resume))

    def _write(
        self, update: dict[str, Any], returns: Literal["NONE", "ALL_NEW"] = "NONE", stamp: dict[str, Any] | None = None
    ) -> Outcome:
        """One conditional update; on a failed condition, the item as it stood comes back with the error."""
        written = conditional_update(self.table, update, stamp=stamp, returns=returns)
        return Outcome(done=written.done, node=parse_node(written.item) if written.item else None)


@dataclass
class ItemResult:
    """One finished ``foreach`` item of a batch, as ``put_succeeded_items`` writes it."""

    index: int
    attempt: int
    tool: str
    output: Any
    started_at: str
    finished_at: str
    tool_ms: int | None
    attempt_started_at: str | None = None
    cache_key: str | None = None
    """The tool ran for a cached node: the item's record becomes an entry of this key."""
    cached_from: dict[str, Any] | None = None
    """The output was reused from this earlier result (the tool did not run)."""


def _cache_fields(
    update: dict[str, Any], run_id: str, at: str, cache_key: str | None, cached_from: Mapping[str, Any] | None
) -> None:
    """Add to a success write: the index keys making it a cache entry, or the marks of a reused output."""
    values = update["ExpressionAttributeValues"]
    if cache_key:
        update["UpdateExpression"] = add_set(update["UpdateExpression"], "gsi1pk = :cpk, gsi1sk = :csk")
        values.update({":cpk": cache_pk(cache_key), ":csk": cache_sk(at, run_id)})
    if cached_from is not None:
        update["UpdateExpression"] = add_set(update["UpdateExpression"], "cached = :on, cached_from_json = :cf")
        values.update({":on": True, ":cf": _json(dict(cached_from))})
