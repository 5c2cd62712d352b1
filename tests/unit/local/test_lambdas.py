"""The in-process Lambda dispatcher answers boto3 Invoke calls as real Lambda does (no AWS, no moto)."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import botocore.handlers
import pytest
from botocore.exceptions import ClientError

from local.lambdas import LambdaDispatcher
from local.template import Template

if TYPE_CHECKING:
    from collections.abc import Iterator

ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


@pytest.fixture
def dispatcher() -> Iterator[LambdaDispatcher]:
    d = LambdaDispatcher()
    d.install()
    try:
        yield d
    finally:
        d.uninstall()


def lambda_client() -> Any:
    # A session created after install() carries the handler; the call never leaves the process.
    return boto3.session.Session(region_name="us-east-1").client("lambda")


def test_invoke_returns_the_handlers_result_as_a_payload_stream(dispatcher: LambdaDispatcher) -> None:
    # GIVEN a registered function that echoes its event and context
    dispatcher.register(
        "echo", lambda event, ctx: {"event": event, "name": ctx.function_name, "arn": ctx.invoked_function_arn}
    )
    # WHEN invoked through boto3
    response = lambda_client().invoke(FunctionName="echo", Payload=json.dumps({"a": 1}))
    # THEN the response is what Lambda returns
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"event": {"a": 1}, "name": "echo", "arn": ARN + "echo"}


@pytest.mark.parametrize(
    "name", ["echo", "echo:$LATEST", "123456789012:function:echo", ARN + "echo", ARN + "echo:live"]
)
def test_names_partial_and_full_arns_resolve(dispatcher: LambdaDispatcher, name: str) -> None:
    dispatcher.register("echo", lambda event, ctx: "ok")
    response = lambda_client().invoke(FunctionName=name, Payload=b"{}")
    assert json.loads(response["Payload"].read()) == "ok"


def test_other_accounts_and_regions_do_not_resolve(dispatcher: LambdaDispatcher) -> None:
    dispatcher.register("echo", lambda event, ctx: "ok")
    assert dispatcher.resolve("arn:aws:lambda:eu-west-1:123456789012:function:echo") is None
    assert dispatcher.resolve("arn:aws:lambda:us-east-1:999999999999:function:echo") is None
    assert dispatcher.resolve("999999999999:function:echo") is None


def test_an_exception_becomes_an_unhandled_function_error(dispatcher: LambdaDispatcher) -> None:
    class ToolFailed(Exception):
        pass

    def boom(event: Any, ctx: Any) -> None:
        raise ToolFailed("the tool broke")

    dispatcher.register("boom", boom)
    response = lambda_client().invoke(FunctionName="boom", Payload=b"{}")
    # THEN status 200 with FunctionError, and the error type is the exception's class name, as in Lambda
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "ToolFailed"
    assert payload["errorMessage"] == "the tool broke"
    assert isinstance(payload["stackTrace"], list)


def test_the_functions_timeout_is_honored(dispatcher: LambdaDispatcher) -> None:
    release = threading.Event()
    dispatcher.register("slow", lambda event, ctx: release.wait(5), timeout=0.2)
    response = lambda_client().invoke(FunctionName="slow", Payload=b"{}")
    release.set()
    assert response["FunctionError"] == "Unhandled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 0.20 seconds" in payload["errorMessage"]


def test_remaining_time_counts_down_from_the_timeout(dispatcher: LambdaDispatcher) -> None:
    dispatcher.register("t", lambda event, ctx: ctx.get_remaining_time_in_millis(), timeout=10, memory=256)
    remaining = json.loads(lambda_client().invoke(FunctionName="t", Payload=b"{}")["Payload"].read())
    assert 9000 < remaining <= 10000


def test_a_result_that_is_not_json_is_a_marshal_error(dispatcher: LambdaDispatcher) -> None:
    dispatcher.register("bad", lambda event, ctx: {1, 2})
    response = lambda_client().invoke(FunctionName="bad", Payload=b"{}")
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.MarshalError"


def test_a_template_function_whose_module_is_missing_fails_like_lambda(dispatcher: LambdaDispatcher) -> None:
    spec = Template.load().functions()["ApiFunction"]
    fn = dispatcher.add_function(spec)
    fn.handler_path = "functions.does_not_exist.handler.lambda_handler"
    response = lambda_client().invoke(FunctionName=spec.name, Payload=b"{}")
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.ImportModuleError"


def test_async_invoke_is_accepted_and_runs_later(dispatcher: LambdaDispatcher) -> None:
    done = threading.Event()
    dispatcher.register("bg", lambda event, ctx: done.set())
    response = lambda_client().invoke(FunctionName="bg", InvocationType="Event", Payload=b"{}")
    assert response["StatusCode"] == 202
    assert done.wait(5)


def test_concurrent_invocations_each_get_their_own_result(dispatcher: LambdaDispatcher) -> None:
    # GIVEN a function that holds each call until 8 are in flight at once
    barrier = threading.Barrier(8, timeout=5)

    def square(event: Any, ctx: Any) -> int:
        barrier.wait()
        return int(event["n"]) ** 2

    dispatcher.register("square", square, timeout=10)
    results: dict[int, int] = {}

    def call(n: int) -> None:
        response = lambda_client().invoke(FunctionName="square", Payload=json.dumps({"n": n}))
        results[n] = json.loads(response["Payload"].read())

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # THEN all ran concurrently (the barrier released) and none got another's answer
    assert results == {n: n * n for n in range(8)}


def test_uninstall_removes_the_hook_from_new_sessions(dispatcher: LambdaDispatcher) -> None:
    # GIVEN an installed dispatcher WHEN it is uninstalled
    dispatcher.uninstall()
    # THEN sessions created afterwards no longer carry its handler
    assert all(getattr(spec[1], "__self__", None) is not dispatcher for spec in botocore.handlers.BUILTIN_HANDLERS)


def test_an_unknown_function_is_resource_not_found(dispatcher: LambdaDispatcher) -> None:
    with pytest.raises(ClientError) as info:
        lambda_client().invoke(FunctionName="missing", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert ARN + "missing" in info.value.response["Error"]["Message"]


def test_usage_adds_up_each_functions_invocations_and_their_handler_cpu(dispatcher: LambdaDispatcher) -> None:
    # GIVEN a function that spends CPU and one that sleeps
    def spin(event: Any, ctx: Any) -> int:
        total, deadline = 0, time.thread_time() + 0.05
        while time.thread_time() < deadline:
            total += 1
        return total

    dispatcher.register("spin", spin)
    dispatcher.register("nap", lambda event, ctx: time.sleep(0.05))
    before = dispatcher.usage("spin")
    # WHEN each is invoked twice
    for _ in range(2):
        lambda_client().invoke(FunctionName="spin", Payload=b"{}")
        lambda_client().invoke(FunctionName="nap", Payload=b"{}")
    # THEN each one's usage counts its own invocations; the spinning one's CPU is what it spent
    spun, napped = dispatcher.usage("spin") - before, dispatcher.usage("nap")
    assert (spun.invocations, napped.invocations) == (2, 2)
    assert spun.cpu_seconds >= 0.1
    assert spun.seconds >= spun.cpu_seconds
    assert napped.seconds >= 0.1
    assert napped.cpu_seconds < 0.05
    assert dispatcher.usage("never-invoked").invocations == 0
