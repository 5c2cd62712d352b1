"""The compiler's exact output for the walking skeleton's graph: two util.echo nodes, the second reading the first."""

from __future__ import annotations

import json

from asl_shape import ARN, SERVICE_RETRY

from statemachine.compiler import compile_graph
from statemachine.validation import validate


def task(node: str, params: dict[str, str], **end: object) -> dict[str, object]:
    ctx = {
        "node": node,
        "tool": "util.echo",
        "params": params,
        "retry": {"max_attempts": 0, "interval_seconds": 1, "backoff_rate": 2.0, "jitter": "NONE"},
        "timeout_seconds": 60,
        "doc_budget": 96 * 1024,
    }
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": ARN,
            "Payload": {
                "node": node,
                "tool": "util.echo",
                "mode": "run",
                "ctx": json.dumps(ctx, separators=(",", ":")),
                "doc.$": "$",
                "retry_count.$": "$$.State.RetryCount",
                "execution.$": "$$.Execution.Id",
            },
        },
        "TimeoutSeconds": 60,
        "Retry": [SERVICE_RETRY],
        "OutputPath": "$.Payload",
        **end,
    }


def test_two_echo_nodes_compile_to_two_chained_tasks() -> None:
    # GIVEN the skeleton's graph: first echoes the input, second echoes first's output
    spec = validate(
        {
            "name": "two",
            "nodes": [
                {"id": "first", "tool": "util.echo", "params": {"value": "{{ input.msg }}"}},
                {"id": "second", "tool": "util.echo", "params": {"value": "{{ first.value }}"}},
            ],
            "edges": [{"from": "first", "to": "second"}],
        }
    )
    # WHEN it is compiled
    definition = compile_graph(spec, executor_arn=ARN)
    # THEN each node is one Task named by its id, chained first -> second, handing on $.Payload
    assert definition == {
        "Comment": "stepgraph: two",
        "StartAt": "first",
        "States": {
            "first": task("first", {"value": "{{ input.msg }}"}, Next="second"),
            "second": task("second", {"value": "{{ first.value }}"}, End=True),
        },
    }
