"""People in the loop: a waiting node, its task token, the claim of one answer, and the listing of waits.

- The executor's ``wait`` step keeps the ``.waitForTaskToken`` token in its own item,
  ``RUN#<id>``/``TOKEN#<node>#<iteration:04d>``: not in the node item (which the API returns), not under a
  prefix the stream function turns into events, and read only by the respond route.
- The node item becomes ``WAITING`` (stamping ``NODE_WAITING``) with its resolved ``prompt`` and
  ``waiting_since``, and is indexed on ``gsi1`` under ``WAITING`` (``gsi1sk = <since>#<run_id>#<node>``): that
  sparse index is what ``GET /runs?status=WAITING`` reads. Every write that ends the wait removes the index
  keys, so a run stops being listed once nothing in it waits.
- A respond claims the node with one conditional write (``WAITING`` and not claimed, or claimed longer ago than
  ``CLAIM_SECONDS``: an API that died mid-respond does not block the node for good): of two responds at once,
  exactly one wins. The winner then calls SendTaskSuccess; the node's ``answer`` step records it SUCCEEDED.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.store.records import (
    _NOT_TERMINAL,
    _OLDER_UNFINISHED,
    _TERMINAL_VALUES,
    MAX_MESSAGE,
    Outcome,
    Records,
    _node_event,
)
from functions.store.table import conditional_update, dump_json, iso, listing_page, node_sk, now_iso, run_pk
from statemachine.status import NodeStatus, RunStatus

if TYPE_CHECKING:
    from functions.store.runs import Run, RunStore

WAITING_INDEX = NodeStatus.WAITING.value
"""``gsi1pk`` of a waiting node item: its status."""
TOKEN_PREFIX = "TOKEN#"
CLAIM_SECONDS = 60
"""How long a respond's claim holds the node before another respond may take it (the claimer died)."""


def token_sk(node: str, iteration: int) -> str:
    return f"{TOKEN_PREFIX}{node}#{iteration:04d}"


@dataclass(frozen=True)
class Wait:
    """One waiting node, as ``GET /runs/{id}`` lists it."""

    node: str
    tool: str
    prompt: str
    since: str


class Waits(Records):
    """The writes and reads of people-in-the-loop steps (same table as the node records)."""

    # -- the executor's wait step -------------------------------------------------------------------

    def keep_token(self, run_id: str, node: str, iteration: int, attempt: int, token: str) -> None:
        """Store the Task's callback token for the respond route (before the node says it waits)."""
        self.table.put_item(
            Item={
                "pk": run_pk(run_id),
                "sk": token_sk(node, iteration),
                "token": token,
                "attempt": attempt,
                "at": now_iso(),
            }
        )

    def mark_waiting(
        self,
        run_id: str,
        node: str,
        iteration: int,
        attempt: int,
        *,
        tool: str,
        prompt: str,
        schema: dict[str, Any] | None = None,
        resume: int = 0,
    ) -> Outcome:
        """Mark the node WAITING (stamping ``NODE_WAITING``), unless this attempt was recorded or the node ended.

        ``resume``: as for ``Records.start_attempt``, a resumed run's execution waits afresh on a record an older
        execution left unfinished (the run was cancelled or failed while it waited)."""
        at = now_iso()
        sk = node_sk(node, iteration)
        update = self._start_update(run_id, sk, node, iteration, attempt, tool, at, resume, status=NodeStatus.WAITING)
        sets = ["waiting_since = :at", "prompt = :prompt", "gsi1pk = :index", "gsi1sk = :order"]
        values = update["ExpressionAttributeValues"]
        values.update({":prompt": prompt, ":index": WAITING_INDEX, ":order": f"{at}#{run_id}#{node}#{iteration:04d}"})
        if schema is not None:
            sets.append("schema_json = :schema")
            values[":schema"] = dump_json(schema)
        removed = "claimed_at, claim_id"
        if resume:  # one write also restarts a record an older execution left (start_attempt needs a second)
            values[":ok"] = NodeStatus.SUCCEEDED
            update["ConditionExpression"] += f" OR (attribute_exists(pk) AND {_OLDER_UNFINISHED})"
            removed += ", error_json, failed_attempt, finished_at, duration_ms"
        update["UpdateExpression"] += ", " + ", ".join(sets) + " REMOVE " + removed
        text = f"{node} waits for a person ({tool}): {prompt}"[:MAX_MESSAGE]
        stamp = _node_event(sk, "NODE_WAITING", at, text, node=node, iteration=iteration, attempt=attempt)
        return self._transition(update, stamp, returns="ALL_NEW", resume=resume)

    # -- the answer step ----------------------------------------------------------------------------

    def record_answer(self, run_id: str, node: str, iteration: int, *, tool: str, output: Any, summary: str) -> Outcome:
        """Mark the node SUCCEEDED with the answer Step Functions handed on (``NODE_SUCCEEDED``), once."""
        at = now_iso()
        sk = node_sk(node, iteration)
        update = {
            "Key": {"pk": run_pk(run_id), "sk": sk},
            "UpdateExpression": (
                "SET #node = :node, iteration = :it, tool = if_not_exists(tool, :tool), #status = :ok,"
                " attempts = if_not_exists(attempts, :one), started_at = if_not_exists(started_at, :at),"
                " finished_at = :at, output_json = :out"
                " REMOVE error_json, gsi1pk, gsi1sk, claimed_at, claim_id"
            ),
            "ConditionExpression": f"attribute_not_exists(pk) OR {_NOT_TERMINAL}",
            "ExpressionAttributeNames": {"#status": "status", "#node": "node"},
            "ExpressionAttributeValues": {
                ":node": node,
                ":it": iteration,
                ":tool": tool,
                ":ok": NodeStatus.SUCCEEDED,
                ":one": 1,
                ":at": at,
                ":out": dump_json(output),
                **_TERMINAL_VALUES,
            },
        }
        text = f"{node} answered: {summary}"[:MAX_MESSAGE]
        stamp = _node_event(sk, "NODE_SUCCEEDED", at, text, node=node, iteration=iteration)
        return self._transition(update, stamp)

    # -- the respond route --------------------------------------------------------------------------

    def waiting_item(self, run_id: str, node: str, iteration: int) -> dict[str, Any] | None:
        """The node item as stored (with ``schema_json``), read consistently."""
        item = self.table.get_item(Key={"pk": run_pk(run_id), "sk": node_sk(node, iteration)}, ConsistentRead=True)
        return item.get("Item")

    def claim(self, run_id: str, node: str, iteration: int, claim_id: str, attempt: int) -> bool:
        """Take the right to answer this wait: one conditional write; False when the node is not (or no longer)
        waiting for this attempt, or another respond holds it."""
        now = datetime.now(UTC)
        stale = iso(now - timedelta(seconds=CLAIM_SECONDS))
        claim = {
            "Key": {"pk": run_pk(run_id), "sk": node_sk(node, iteration)},
            "UpdateExpression": "SET claimed_at = :now, claim_id = :c",
            "ConditionExpression": (
                "#status = :waiting AND attempts = :a AND (attribute_not_exists(claimed_at) OR claimed_at < :stale)"
            ),
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":now": iso(now),
                ":c": claim_id,
                ":waiting": NodeStatus.WAITING,
                ":a": attempt,
                ":stale": stale,
            },
        }
        return conditional_update(self.table, claim).done

    def release(self, run_id: str, node: str, iteration: int, claim_id: str) -> None:
        """Give a claim back (SendTaskSuccess could not be made): the node may be answered again."""
        release = {
            "Key": {"pk": run_pk(run_id), "sk": node_sk(node, iteration)},
            "UpdateExpression": "REMOVE claimed_at, claim_id",
            "ConditionExpression": "claim_id = :c",
            "ExpressionAttributeValues": {":c": claim_id},
        }
        conditional_update(self.table, release)

    def token(self, run_id: str, node: str, iteration: int) -> tuple[str, int] | None:
        """``(token, attempt)`` of the node's wait, or None."""
        item = self.table.get_item(Key={"pk": run_pk(run_id), "sk": token_sk(node, iteration)}, ConsistentRead=True)
        found = item.get("Item")
        if not found or not isinstance(found.get("token"), str):
            return None
        return str(found["token"]), int(str(found.get("attempt") or 1))

    def drop_token(self, run_id: str, node: str, iteration: int) -> None:
        """Forget a used token (a token answers once)."""
        self.table.delete_item(Key={"pk": run_pk(run_id), "sk": token_sk(node, iteration)})

    # -- reads --------------------------------------------------------------------------------------

    def list_waiting_runs(
        self, runs: RunStore, *, graph_id: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[Run], str | None]:
        """RUNNING runs with a node waiting for a person, the most recent wait first (``gsi1`` ``WAITING``)."""
        seen: set[str] = set()

        def wanted(items: list[dict[str, Any]]) -> list[Run | None]:
            run_ids = [str(i["pk"]).removeprefix("RUN#") for i in items]
            by_id = {run.run_id: run for run in runs._batch_get(sorted(set(run_ids) - seen))}
            kept: list[Run | None] = []
            for run_id in run_ids:
                run = by_id.get(run_id)
                fits = run is not None and run.status == RunStatus.RUNNING and graph_id in (None, run.graph_id)
                kept.append(run if fits and run_id not in seen else None)
                if fits:
                    seen.add(run_id)
            return kept

        return listing_page(self.table, WAITING_INDEX, None, wanted, limit=limit, cursor=cursor)
