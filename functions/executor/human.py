"""A person's step (``human.approval``, ``human.input``): the ``wait`` and ``answer`` modes of the executor.

``wait`` runs inside the node's ``.waitForTaskToken`` Task: it keeps the callback token where only the respond
route reads it, resolves the prompt and records the node ``WAITING``. Step Functions then waits for the
respond route's SendTaskSuccess (or the Task's timeout). ``answer`` runs after the Task with the answer at
``results.<node>``: it records the node SUCCEEDED and returns the document, as a tool's ``run`` would.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from functions.executor.errors import node_failure
from functions.executor.failures import describe_error
from functions.store.waits import Waits
from statemachine import references

if TYPE_CHECKING:
    from functions.executor.node import Invocation, NodeExecutor

WAIT_MARKER: dict[str, Any] = {"waiting": True}
"""What ``wait`` returns; Step Functions ignores a ``.waitForTaskToken`` invocation's result."""


def serve(executor: NodeExecutor, inv: Invocation) -> dict[str, Any]:
    """Serve a ``wait`` or ``answer`` request."""
    waits = Waits(executor.records.table)
    if inv.request.mode == "wait":
        return wait(executor, waits, inv)
    return answer(executor, waits, inv)


def wait(executor: NodeExecutor, waits: Waits, inv: Invocation) -> dict[str, Any]:
    """Keep the token, then record the node WAITING with its prompt resolved (``NODE_WAITING``)."""
    token = inv.request.token
    if not token:
        raise node_failure("stepgraph.InvalidRequest", f"{inv.node}: a wait request without its task token")
    try:
        raw = inv.ctx.params.get("prompt", "")
        resolved = references.resolve(raw, executor._scope(inv))
    except Exception as exc:
        code, message = describe_error(exc, inv.tool)
        error = {"code": code, "message": message}
        executor._guard(lambda: waits.fail_node(inv.run_id, inv.node, inv.iteration, tool=inv.tool, error=error))
        raise node_failure(code, message) from None
    prompt = resolved if isinstance(resolved, str) else json.dumps(resolved, ensure_ascii=False)
    schema = inv.ctx.params.get("schema") if inv.tool == "human.input" else None
    executor._guard(lambda: waits.keep_token(inv.run_id, inv.node, inv.iteration, inv.attempt, token))
    executor._guard(
        lambda: waits.mark_waiting(
            inv.run_id,
            inv.node,
            inv.iteration,
            inv.attempt,
            tool=inv.tool,
            prompt=prompt,
            schema=schema if isinstance(schema, dict) else ({} if inv.tool == "human.input" else None),
            resume=inv.resume,
        )
    )
    executor.log.info("waiting for a person", extra={"prompt_chars": len(prompt)})
    return dict(WAIT_MARKER)


def answer(executor: NodeExecutor, waits: Waits, inv: Invocation) -> dict[str, Any]:
    """Record the answer the Task handed on as the node's output and return the document with it."""
    output = (inv.request.doc.get("results") or {}).get(inv.node)
    if inv.resume and not isinstance(output, dict):  # a resumed run skipped the wait: the answer is recorded
        replay = executor._replay(inv, executor._guard(lambda: executor.records.get_node(*inv.key)))
        if replay is not None:
            return replay
    if not isinstance(output, dict):
        raise node_failure("stepgraph.InvalidRequest", f"{inv.node}: no answer at results.{inv.node}")
    try:
        slim = executor.offloader.offload(inv.run_id, inv.node, inv.iteration, output, keep_inline=inv.ctx.inline_paths)
        doc = executor._apply(inv, output, slim)
    except Exception as exc:
        executor._fail(inv, exc, 0, attempt=1)
    outcome = executor._guard(
        lambda: waits.record_answer(
            inv.run_id, inv.node, inv.iteration, tool=inv.tool, output=slim, summary=summary(inv.tool, output)
        )
    )
    if not outcome and outcome.node is not None and outcome.node.terminal:
        replay = executor._replay(inv, outcome.node)
        if replay is not None:
            return replay
    return executor._fit(inv, doc)


def summary(tool: str, output: dict[str, Any]) -> str:
    """How an answer reads in the event log."""
    if tool == "human.approval":
        verdict = "approved" if output.get("approved") else "rejected"
        comment = output.get("comment")
        return f"{verdict}" + (f" ({comment})" if comment else "")
    return "input received"
