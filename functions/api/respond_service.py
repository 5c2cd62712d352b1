"""``POST /runs/{id}/nodes/{node}/respond``: a person's answer to a waiting ``human.*`` node.

In order: the run and node exist (404), the node is a person's step (409 otherwise: it never waits), the body
has the tool's shape and, for ``human.input``, the answer satisfies the node's ``schema`` (422 with where),
the node is WAITING (409). Then one conditional write claims the wait (of two responds at once exactly one
wins; the other gets 409), and only the winner reads the task token and calls SendTaskSuccess. If Step
Functions says the wait is over (``TaskTimedOut``: the node timed out), the answer is refused with 409, so a
2xx always means the run goes on with it. The node's ``answer`` step then records it SUCCEEDED.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.errors import ConflictError, NotFoundError, PayloadTooLargeError, UnprocessableError, UpstreamError
from functions.store.table import now_iso
from functions.store.waits import Waits
from statemachine.spec import HUMAN_TOOLS
from statemachine.status import NodeStatus, RunStatus

if TYPE_CHECKING:
    from functions.api.services import Services

WAIT_OVER = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
"""SendTaskSuccess's answers for a token whose wait has ended (timed out, or its execution stopped)."""


def respond(services: Services, run_id: str, node: str, body: Any) -> dict[str, Any]:
    """Hand a person's answer to the waiting node; the answer as the node's output (see the module doc)."""
    # The answers' models live with the human tools; imported here so the API's cold start loads no executor tool.
    from functions.executor.tools._human import (
        MAX_ANSWER_BYTES,
        ApprovalAnswer,
        InputAnswer,
        schema_problems,
        shape_problems,
    )

    run = services.runs.get(run_id)
    version = services.graphs.version(run.graph_id, run.version)
    spec_node = next((n for n in version.spec.get("nodes", []) if isinstance(n, dict) and n.get("id") == node), None)
    if spec_node is None:
        raise NotFoundError(f"run {run_id} has no node {node!r}")
    tool = str(spec_node.get("tool"))
    if tool not in HUMAN_TOOLS:
        raise ConflictError(f"node {node!r} runs {tool}: it never waits for a person")
    model = ApprovalAnswer if tool == "human.approval" else InputAnswer
    problems = shape_problems(model, body)
    if problems:
        expected = '{"approved": true|false, "comment": "..."}' if tool == "human.approval" else '{"input": ...}'
        raise UnprocessableError(f"{tool} takes an answer shaped {expected}", problems)
    waits = Waits(services.table)
    iteration = services.records.latest_iteration(run_id, node)
    item = waits.waiting_item(run_id, node, iteration) if iteration is not None else None
    status = str(item.get("status")) if item else NodeStatus.PENDING
    if item is None or status != NodeStatus.WAITING or run.status != RunStatus.RUNNING:
        shown = (
            status
            if run.status == RunStatus.RUNNING or status in (NodeStatus.SUCCEEDED, NodeStatus.FAILED)
            else f"{status}, run {run.status}"
        )
        raise ConflictError(f"node {node!r} of run {run_id} is not waiting for an answer ({shown})")
    assert iteration is not None
    responded_at = now_iso()
    if tool == "human.approval":
        answer = ApprovalAnswer.model_validate(body)
        output: dict[str, Any] = {"approved": answer.approved, "comment": answer.comment, "responded_at": responded_at}
    else:
        schema = json.loads(str(item.get("schema_json") or "{}"))
        value = InputAnswer.model_validate(body).input
        broken = schema_problems(schema, value)
        if broken:
            raise UnprocessableError(f"the answer does not satisfy node {node!r}'s schema", broken)
        output = {"input": value, "responded_at": responded_at}
    encoded = json.dumps(output, separators=(",", ":"), ensure_ascii=False)
    if len(encoded.encode()) > MAX_ANSWER_BYTES:
        raise PayloadTooLargeError(
            f"the answer is {len(encoded.encode())} bytes as JSON, over the limit of {MAX_ANSWER_BYTES} bytes "
            "(it travels in the run's document); pass large data by reference instead"
        )
    attempt = int(item.get("attempts") or 1)
    claim = uuid.uuid4().hex
    if not waits.claim(run_id, node, iteration, claim, attempt):
        raise ConflictError(f"node {node!r} of run {run_id} is not waiting for an answer (another answer came first)")
    found = waits.token(run_id, node, iteration)
    if found is None or found[1] != attempt:
        waits.release(run_id, node, iteration, claim)
        raise ConflictError(f"node {node!r} of run {run_id} is not waiting for an answer (its wait is being renewed)")
    try:
        services.sfn.send_task_success(taskToken=found[0], output=encoded)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in WAIT_OVER:
            # the claim stays: the node's wait is over, and its timeout is recorded by its Catch or the run's end
            raise ConflictError(
                f"node {node!r} of run {run_id} is not waiting for an answer: its wait ended ({code})"
            ) from exc
        waits.release(run_id, node, iteration, claim)
        raise UpstreamError(f"SendTaskSuccess failed: {code}") from exc
    # used once: Step Functions refuses it from now on; if this delete fails, the run's expiry deletes it
    with contextlib.suppress(ClientError):
        waits.drop_token(run_id, node, iteration)
    return {"run_id": run_id, "node": node, "iteration": iteration, "tool": tool, "output": output}
