"""Builders for executor requests, as the compiled Task states send them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.store.events import EventLog
from statemachine.protocol import NodeContext
from statemachine.spec import RetryPolicy
from tests.unit.table_stream import pump

if TYPE_CHECKING:
    from functions.store.records import Records

RUN = "r_00000000000000e1"


def document(
    results: dict[str, Any] | None = None, input: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    data = input if input is not None else {"message": "hello"}
    return {
        "run": {"run_id": RUN, "graph_id": "g_000000000001", "version": 1},
        "input": data,
        "state": dict(data),
        "results": results or {},
        "loops": {},
        "sd": {},
        **extra,
    }


def request(
    node: str,
    tool: str,
    params: dict[str, Any] | None = None,
    *,
    doc: dict[str, Any] | None = None,
    retries: int = 0,
    retry_count: int = 0,
    mode: str = "run",
    **ctx_fields: Any,
) -> dict[str, Any]:
    """The Task payload for ``node``; ``retries`` is the node's ``max_attempts``."""
    ctx = NodeContext(
        node=node,
        tool=tool,
        params=params or {},
        retry=RetryPolicy(max_attempts=retries, interval_seconds=1),
        **{"timeout_seconds": 30, **ctx_fields},
    )
    return {
        "node": node,
        "tool": tool,
        "ctx": ctx.to_json(),
        "doc": doc if doc is not None else document(),
        "mode": mode,
        "retry_count": retry_count,
        "execution": f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_000000000001:{RUN}",
    }


@dataclass
class FakeContext:
    """The Lambda context attributes Powertools reads."""

    function_name: str = "stepgraph-executor"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = ""

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def numbered(records: Records, run_id: str = RUN) -> list[dict[str, Any]]:
    """The run's events once the stream function has numbered every write so far."""
    pump()
    return EventLog(records.table).page(run_id, limit=1000).events


def invoke(event: dict[str, Any]) -> Any:
    """The executor's Lambda handler, called as Lambda would."""
    from functions.executor import handler

    return handler.lambda_handler(event, FakeContext())
