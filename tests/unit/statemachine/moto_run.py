"""Test helper: run a compiled definition in a bare moto (no DynamoDB) with a tiny executor stub.

The stub applies the pure document rules (``statemachine.payload``/``references``) and runs ``util.echo``
(output = resolved params) and ``util.fail`` (raises its ``error`` for its first ``failures`` attempts);
item outputs are kept in memory for ``collect``. It checks that moto's interpreter accepts and runs what
the compiler emits; the real executor is exercised by tests/functional.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from local import strict
from local.lambdas import LambdaDispatcher
from statemachine import payload, references
from statemachine.protocol import ExecutorRequest, batch_starts, lambda_result

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EXECUTOR = "stepgraph-executor"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{EXECUTOR}"


class StubFailure(Exception):
    """Raised with the error name as its class name, so Lambda's errorType is that name."""


class Stub:
    """The executor stub; ``calls`` lists (node, mode) in call order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.items: dict[tuple[str, int], Any] = {}
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], _context: Any) -> Any:
        req = ExecutorRequest.from_event(event)
        ctx = req.context
        with self.lock:
            self.calls.append((req.node, req.mode))
        if req.mode == "failed":
            return payload.apply_failure(req.doc, ctx)
        if req.mode == "record":
            output, _started, _attempts = lambda_result(req.doc, req.node)
            return payload.apply_result(req.doc, ctx, output)
        if req.mode == "plan":
            items = references.resolve(ctx.foreach, payload.scope(req.doc))
            size = ctx.batch_max or 1
            return {"doc": req.doc, "starts": batch_starts(len(items), size), "size": size}
        if req.mode == "collect":
            items = references.resolve(ctx.foreach, payload.scope(req.doc))
            return payload.apply_result(req.doc, ctx, [self.items[(req.node, i)] for i in range(len(items))])
        if req.mode == "batch":
            items = references.resolve(ctx.foreach, payload.scope(req.doc))
            start = req.start or 0
            for index in range(start, min(len(items), start + (req.size or 1))):
                params = references.resolve(ctx.params, payload.scope(req.doc, items[index], with_item=True))
                with self.lock:
                    self.items[(req.node, index)] = params
            return {"ok": True}
        scope = payload.scope(req.doc, req.item, with_item=req.mode == "item")
        params = references.resolve(ctx.params, scope)
        if ctx.tool == "util.fail" and req.attempt <= int(params.get("failures", 1)):
            raise type(str(params.get("error", "Boom")), (StubFailure,), {})("injected")
        if req.mode == "item":
            assert req.index is not None
            with self.lock:
                self.items[(req.node, req.index)] = params
            return {"ok": True}
        return payload.apply_result(req.doc, ctx, params)


@contextmanager
def moto_sfn(functions: dict[str, Callable[[Any, Any], Any]] | None = None) -> Iterator[Callable[..., Any]]:
    """Yield ``run(definition, doc) -> (status, output | error)`` inside a bare mock_aws."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        dispatcher = LambdaDispatcher()
        for name, handler in (functions or {}).items():
            dispatcher.register(name, handler, timeout=10)
        dispatcher.install()
        undo_strict = strict.install()  # AWS's limits, as the local cloud has them
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        counter = iter(range(1_000_000))

        def run(definition: dict[str, Any], doc: dict[str, Any], timeout: float = 30) -> tuple[str, Any]:
            arn = sfn.create_state_machine(
                name=f"t{next(counter)}",
                definition=json.dumps(definition),
                roleArn="arn:aws:iam::123456789012:role/stepgraph-states",
            )["stateMachineArn"]
            execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(doc))["executionArn"]
            deadline = time.monotonic() + timeout
            while True:
                described = sfn.describe_execution(executionArn=execution)
                if described["status"] != "RUNNING" or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if described["status"] == "SUCCEEDED":
                return "SUCCEEDED", json.loads(described["output"])
            return str(described["status"]), {"error": described.get("error"), "cause": described.get("cause")}

        try:
            yield run
        finally:
            undo_strict()
            dispatcher.uninstall()
