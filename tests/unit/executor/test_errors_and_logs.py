"""What a failure looks like from outside: Lambda's errorType/errorMessage, and the JSON logs."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from functions.errors import ToolError
from functions.executor import handler
from functions.executor.errors import NodeFailed, error_type, node_failure
from functions.executor.failures import describe_error
from functions.executor.node import NodeExecutor
from functions.executor.tools.base import is_error_code
from functions.store.offload import BlobStore, Offloader
from functions.store.records import Records
from local.lambdas import LambdaDispatcher
from statemachine.jsonlimits import MAX_ERROR_MESSAGE

from .helpers import RUN, request

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@pytest.fixture
def executor(table: Any) -> Iterator[NodeExecutor]:
    ex = NodeExecutor(
        records=Records(table), offloader=Offloader(BlobStore(table)), logger=handler.logger, metric=handler.emit_metric
    )
    handler.set_executor(ex)
    yield ex
    handler.set_executor(None)


def test_the_raised_class_is_named_by_the_code_and_stable() -> None:
    # GIVEN codes as tools raise them (dots and dashes allowed)
    exc = node_failure("stepgraph.ReferenceError", "no field")

    # THEN the class name is the code, one class per code, all NodeFailed
    assert type(exc).__name__ == "stepgraph.ReferenceError"
    assert error_type("stepgraph.ReferenceError") is type(exc)
    assert isinstance(exc, NodeFailed) and exc.code == "stepgraph.ReferenceError" and str(exc) == "no field"


@pytest.mark.parametrize(
    "exc", [ToolError("bad \ud800 text", code="Odd\udfff"), ValueError("bad \ud800 text")], ids=["tool", "crash"]
)
def test_a_failure_is_described_in_valid_unicode_whatever_the_exception_carried(exc: Exception) -> None:
    # A tool may raise any text; the failure is stored in DynamoDB and served as UTF-8.
    code, message = describe_error(exc, "util.odd")
    assert "bad \ufffd text" in message
    code.encode("utf-8")
    message.encode("utf-8")


def test_a_long_failure_message_is_cut_to_the_recorded_length() -> None:
    code, message = describe_error(ToolError("y" * 50_000, code="Wordy"), "util.odd")
    assert (code, message) == ("Wordy", "y" * MAX_ERROR_MESSAGE + "... (cut: 50000 characters in all)")


def test_an_error_code_is_a_step_functions_error_name_whole() -> None:
    # GIVEN codes a tool may raise, good and bad
    # WHEN each is checked
    # THEN a name like Flaky.Timeout is one, a reserved States. name or one ending in a newline is not
    assert is_error_code("Flaky.Timeout")
    assert not is_error_code("States.Timeout")
    assert not is_error_code("Flaky\n")


def test_through_the_local_lambda_dispatcher_the_error_type_is_the_tool_code(executor: NodeExecutor) -> None:
    # GIVEN the executor served by the local cloud's in-process Lambda dispatcher
    dispatcher = LambdaDispatcher()
    dispatcher.register("stepgraph-executor", handler.lambda_handler, timeout=30)

    # WHEN a node whose tool fails is invoked
    result = dispatcher.invoke(
        "stepgraph-executor",
        request("boom", "util.fail", {"failures": 3, "error": "UpstreamDown", "message": "the upstream said 503"}),
    )

    # THEN Lambda reports FunctionError with errorType = the tool's code and its message
    assert result.function_error == "Unhandled"
    body = result.json()
    assert body["errorType"] == "UpstreamDown"
    assert body["errorMessage"] == "the upstream said 503 (attempt 1 of 3 failing)"
    # AND the tool's own frames are not in what Lambda returns (the chained traceback is suppressed)
    assert "util_fail" not in json.dumps(body.get("stackTrace", []))


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """What the Powertools Logger writes (its handler's stream was bound when the module was imported)."""
    stream = io.StringIO()
    previous = handler.logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    handler.logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_logs_are_json_with_run_node_attempt_and_the_traceback(
    executor: NodeExecutor, capsys: pytest.CaptureFixture[str], log_stream: io.StringIO
) -> None:
    # GIVEN a node whose tool raises
    with pytest.raises(NodeFailed, match="injected failure"):
        handler.lambda_handler(
            request("boom", "util.fail", {"failures": 1, "error": "Flaky"}, retries=2, retry_count=0),
            _context(),
        )

    # THEN every log line is JSON; the failure line carries run id, node, attempt and the traceback
    logs = json_lines(log_stream.getvalue())
    assert logs and all("level" in line for line in logs)
    failed = next(line for line in logs if line["message"] == "node attempt failed")
    assert (failed["run_id"], failed["node"], failed["attempt"], failed["tool"]) == (RUN, "boom", 1, "util.fail")
    assert failed["error_code"] == "Flaky" and failed["final"] is False
    assert "Traceback" in failed["exception"] and "util_fail.py" in failed["exception"]
    # AND the tool's ctx.log line went to the logs too, with the same keys
    tool_line = next(line for line in logs if line.get("tool_log"))
    assert tool_line["node"] == "boom" and "failing attempt 1" in tool_line["message"]
    # AND metrics were emitted in EMF with the tool as a dimension
    emf = [line for line in json_lines(capsys.readouterr().out) if "_aws" in line]
    names = {m["Name"] for line in emf for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"NodeFailures", "NodeDuration"} <= names
    failures = next(line for line in emf if "NodeFailures" in line)
    assert failures["tool"] == "util.fail" and failures["NodeFailures"] in (1.0, [1.0])


def test_keys_do_not_leak_into_the_next_invocation(executor: NodeExecutor, log_stream: io.StringIO) -> None:
    handler.lambda_handler(request("a", "util.echo", {"x": 1}), _context())
    handler.logger.info("between invocations")
    lines = json_lines(log_stream.getvalue())
    between = next(line for line in lines if line.get("message") == "between invocations")
    assert "node" not in between and "run_id" not in between


def _context() -> Any:
    from .helpers import FakeContext

    return FakeContext()


def test_a_batch_of_durations_is_one_metric_document(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the item durations of a foreach batch
    durations = [float(i) for i in range(130)]

    # WHEN they are emitted together
    handler.emit_metric("NodeDuration", "Milliseconds", durations, {"tool": "util.echo"})

    # THEN they take two EMF documents (EMF holds 100 values a metric), not 130 log lines, and none is lost
    emf = [line for line in json_lines(capsys.readouterr().out) if "_aws" in line]
    assert len(emf) == 2
    values = [v for line in emf for v in line["NodeDuration"]]
    assert sorted(values) == durations
    assert all(line["tool"] == "util.echo" for line in emf)
