"""The executor's request and node context: what the compiler writes reads back the same, and a request that is
not one is refused naming the field."""

from __future__ import annotations

import json

import pytest

from statemachine.protocol import ExecutorRequest, NodeContext, ProtocolError, Retry
from statemachine.spec import RetryPolicy


def context(**fields: object) -> NodeContext:
    retry = RetryPolicy(max_attempts=2, backoff_rate=1.5)
    return NodeContext(node="a", tool="util.echo", retry=retry, timeout_seconds=5, **fields)  # type: ignore[arg-type]


def test_a_context_reads_back_as_written_with_only_what_differs_from_the_defaults() -> None:
    # GIVEN a node context as the compiler makes it, params with floats and text outside ASCII
    ctx = context(params={"x": 1e100, "y": "é", "z": [0.1, None]}, optional=True, inline_paths=["out.rows"])
    # WHEN it is written into the Task's payload and read back by the executor
    text = ctx.to_json()
    back = NodeContext.from_json(text)
    # THEN defaults are left out, the retry policy is the spec's, and reading gives the same context
    assert json.loads(text) == {
        "node": "a",
        "tool": "util.echo",
        "params": {"x": 1e100, "y": "é", "z": [0.1, None]},
        "retry": {"max_attempts": 2, "backoff_rate": 1.5},
        "timeout_seconds": 5,
        "optional": True,
        "inline_paths": ["out.rows"],
    }
    assert back == ctx
    assert back.retry == Retry(max_attempts=2, backoff_rate=1.5)
    assert "params" not in json.loads(back.without_params().to_json())


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"tool": "t", "ctx": "{}", "doc": {}}, "ExecutorRequest.node: field required"),
        ({"node": "a", "tool": "t", "ctx": "{}", "doc": []}, "ExecutorRequest.doc: expected an object, got list"),
        ({"node": "a", "tool": "t", "ctx": "{}", "doc": {}, "mode": "walk"}, "ExecutorRequest.mode: expected one of"),
        ({"node": "a", "tool": "t", "ctx": "{}", "doc": {}, "retry_count": True}, "retry_count: expected an integer"),
        ("not an object", "ExecutorRequest: expected an object, got str"),
    ],
)
def test_a_request_that_is_not_one_is_refused_naming_the_field(event: object, named: str) -> None:
    # WHEN the executor parses a payload with a field missing or mistyped
    with pytest.raises(ProtocolError) as raised:
        ExecutorRequest.from_event(event)  # type: ignore[arg-type]
    # THEN the error names the field and what was wrong
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("ctx", "named"),
    [
        ('{"node": "a", "tool": "t", "timeout_seconds": 5}', "NodeContext.retry: field required"),
        ('{"node": "a", "tool": "t", "retry": {"tries": 1}, "timeout_seconds": 5}', "NodeContext.retry.tries: unknown"),
        ('{"node": "a", "tool": "t", "retry": {"max_attempts": -1}, "timeout_seconds": 5}', "max_attempts: expected"),
        ('{"node": "a", "tool": "t", "retry": {}, "timeout_seconds": "5"}', "timeout_seconds: expected an integer"),
        ('{"node": "a", "tool": "t", "retry": {}, "timeout_seconds": 5, "update_state": {"a": 1}}', "update_state"),
        ("{not json", "NodeContext: not JSON"),
    ],
)
def test_a_context_that_is_not_one_is_refused_naming_the_field(ctx: str, named: str) -> None:
    request = ExecutorRequest.from_event({"node": "a", "tool": "t", "ctx": ctx, "doc": {}})
    with pytest.raises(ProtocolError) as raised:
        request.context  # noqa: B018
    assert named in str(raised.value)


def test_unknown_request_fields_are_ignored_and_the_token_is_never_shown() -> None:
    # GIVEN a wait request with a field a later compiler may add
    request = ExecutorRequest.from_event(
        {"node": "a", "tool": "t", "ctx": "{}", "doc": {}, "mode": "wait", "token": "secret", "later": 1}
    )
    # THEN it parses, and its repr (logs) leaves the callback token out
    assert request.mode == "wait"
    assert "secret" not in repr(request)
