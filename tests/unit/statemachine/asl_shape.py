"""Test helper: a compiled definition with each Task's Parameters reduced to its node and mode."""

from __future__ import annotations

from typing import Any

from statemachine.compiler import compile_graph
from statemachine.validation import validate

ARN = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor"
SERVICE_RETRY = {
    "ErrorEquals": [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.TooManyRequestsException",
    ],
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "JitterStrategy": "FULL",
}


def compiled(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate and compile (compile_graph runs the structural check on every definition)."""
    return compile_graph(validate({"name": "t", **spec}), executor_arn=ARN)


def shape(definition: dict[str, Any], *, keep_retry: bool = False) -> dict[str, Any]:
    """The definition with Task payloads as ``{node, mode}`` (and Retry dropped unless asked for)."""
    out = dict(definition)
    out["States"] = {name: _state(state, keep_retry) for name, state in definition["States"].items()}
    return out


def _state(state: dict[str, Any], keep_retry: bool) -> dict[str, Any]:
    state = dict(state)
    if state["Type"] == "Task" and state["Parameters"]["FunctionName"] != ARN:  # a user's Lambda: kept whole
        if not keep_retry:
            state.pop("Retry")
    elif state["Type"] == "Task":
        payload = state["Parameters"]["Payload"]
        assert state.pop("Resource") == "arn:aws:states:::lambda:invoke"
        assert state["Parameters"]["FunctionName"] == ARN
        state["Parameters"] = {"node": payload["node"], "mode": payload["mode"]}
        if not keep_retry:
            state.pop("Retry")
    if state["Type"] == "Parallel":
        state["Branches"] = [shape(b, keep_retry=keep_retry) for b in state["Branches"]]
    if state["Type"] == "Map":
        state["ItemProcessor"] = shape(state["ItemProcessor"], keep_retry=keep_retry)
    return state


def states(spec: dict[str, Any], *, keep_retry: bool = False) -> dict[str, Any]:
    """Shaped top-level states of a compiled spec."""
    return dict(shape(compiled(spec), keep_retry=keep_retry)["States"])


def task(node: str, mode: str = "run", timeout: int = 60, **rest: Any) -> dict[str, Any]:
    return {"Type": "Task", "Parameters": {"node": node, "mode": mode}, "TimeoutSeconds": timeout, **rest}


def nxt(name: str) -> dict[str, Any]:
    return {"OutputPath": "$.Payload", "Next": name}


END: dict[str, Any] = {"OutputPath": "$.Payload", "End": True}
WRAP: dict[str, Any] = {
    "ResultSelector": {"d": {"results.$": "$.Payload.results", "loops.$": "$.Payload.loops", "sd.$": "$.Payload.sd"}},
    "End": True,
}


def join(results: str, *, loops: str = "$[0].d.loops", sd: str = "$[0].d.sd") -> dict[str, Any]:
    return {
        "run.$": "$$.Execution.Input.run",
        "input.$": "$$.Execution.Input.input",
        "state.$": f"States.JsonMerge($$.Execution.Input.input, {sd}, false)",
        "results.$": results,
        "loops.$": loops,
        "sd.$": sd,
    }


def echo(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.echo", **fields}
