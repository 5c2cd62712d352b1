"""In-process Lambda: answers ``lambda.Invoke`` calls made through boto3 by running Python handlers.

A ``before-call.lambda.Invoke`` handler short-circuits botocore before any HTTP request is made, so the
calls moto's state machine interpreter makes for Task states, and any ``lambda.invoke`` the functions
make themselves, reach the project's handlers (or callables registered in tests). Responses have the
shape real Lambda gives: ``StatusCode``, ``Payload`` as a stream, and for a handler exception
``FunctionError: "Unhandled"`` with ``{"errorType", "errorMessage", ...}``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import boto3
import botocore.handlers
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.response import StreamingBody

from local.iam import current_function

if TYPE_CHECKING:
    from local.template import FunctionSpec

LOG = logging.getLogger(__name__)

MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
"""Lambda's quota on a synchronous invocation's request and on its response: 6 MB each. A larger request is
refused (``RequestEntityTooLargeException``); a larger response is the function's error
(``Function.ResponseSizeTooLarge``), which API Gateway answers as a 502."""

Handler = Callable[[Any, Any], Any]

_EVENT = "before-call.lambda.Invoke"
REFUSAL_STATUS = {"TooManyRequestsException": 429, "ResourceConflictException": 409, "ResourceNotReadyException": 502}
"""HTTP status of an injected refusal (Lambda answers other service errors with 500)."""


class _RawBody(io.BytesIO):
    """The ``raw`` of an AWSResponse: botocore reads it through ``stream()``."""

    def stream(self, **_: Any) -> Any:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


class LambdaContext:
    """The context object a Python Lambda handler receives (the attributes Powertools and handlers read)."""

    def __init__(self, function: LocalFunction, request_id: str) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"local/[$LATEST]{request_id.replace('-', '')}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    """A function the dispatcher can run: a dotted handler path (imported on first use) or a callable."""

    name: str
    arn: str
    timeout: float
    memory: int = 128
    handler_path: str | None = None
    handler: Handler | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def load(self) -> Handler:
        with self._lock:
            if self.handler is None:
                if not self.handler_path:
                    raise ImportError(f"function {self.name} has no handler")
                module_name, _, attr = self.handler_path.rpartition(".")
                module = importlib.import_module(module_name)
                self.handler = getattr(module, attr)
            return self.handler


@dataclass(frozen=True)
class Usage:
    """What a function's invocations have used so far, as Lambda's ``REPORT`` lines add up: how many ran,
    their duration, and the CPU time of their handler threads (the figure a shared local process can split)."""

    invocations: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def __sub__(self, earlier: Usage) -> Usage:
        return Usage(
            self.invocations - earlier.invocations,
            self.seconds - earlier.seconds,
            self.cpu_seconds - earlier.cpu_seconds,
        )


@dataclass(frozen=True)
class InvokeResult:
    """What an invocation returned: HTTP status, ``FunctionError`` (or None) and the payload bytes."""

    status_code: int
    function_error: str | None
    payload: bytes
    request_id: str

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


class LambdaDispatcher:
    """Maps function names and ARNs to handlers and answers Invoke calls in-process; thread-safe."""

    def __init__(self, region: str = "us-east-1", account_id: str = "123456789012") -> None:
        self.region = region
        self.account_id = account_id
        self._functions: dict[str, LocalFunction] = {}
        self._lock = threading.Lock()
        self._installed = False
        self._sessions: list[Any] = []
        self._in_flight = 0
        self._idle = threading.Condition()
        self._usage: dict[str, Usage] = {}
        # Names of functions created in moto's own Lambda backend (e.g. by a test with create_function);
        # calls to those are left to moto. Any other unknown name is ResourceNotFoundException, as in AWS.
        self.passthrough: Callable[[str], bool] = lambda name: False
        # Registered tools' functions (created in moto by the API): a runner taking the request body and
        # answering (FunctionError or None, payload) from the function's zip run in a sandboxed process.
        self.sandboxed: Callable[[str], Callable[[bytes], tuple[str | None, bytes]] | None] = lambda name: None
        # Called with (request_signer, function name) before an Invoke is answered; may raise (IAM audit).
        self.on_invoke: Callable[[Any, str], None] | None = None
        # Fault injection: (function name, request body) -> an error code Lambda answers instead of running
        # the function (``TooManyRequestsException`` when throttled, ``ServiceException``...), or None.
        self.refuse: Callable[[str, bytes], str | None] | None = None
        # Wraps each handler run, given the function's name (the local cloud serves API requests first).
        self.serving: Callable[[str], contextlib.AbstractContextManager[object]] = lambda name: contextlib.nullcontext()

    # ------------------------------------------------------------------ registry

    def _arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def add_function(self, spec: FunctionSpec) -> LocalFunction:
        """Serve a function of ``template.yaml`` (its handler is imported on the first invocation)."""
        fn = LocalFunction(spec.name, spec.arn, spec.timeout, spec.memory, handler_path=spec.handler)
        with self._lock:
            self._functions[spec.name] = fn
        return fn

    def register(self, name: str, handler: Handler, *, timeout: float = 3, memory: int = 128) -> LocalFunction:
        """Serve ``handler(event, context)`` as the function ``name`` (a user's function for ``lambda:`` nodes)."""
        fn = LocalFunction(name, self._arn(name), timeout, memory, handler=handler)
        with self._lock:
            self._functions[name] = fn
        return fn

    def usage(self, name: str) -> Usage:
        """The function's invocations, duration and handler CPU so far (its ended invocations)."""
        with self._lock:
            return self._usage.get(name, Usage())

    def unregister(self, name: str) -> None:
        with self._lock:
            self._functions.pop(name, None)

    def resolve(self, function_name: str) -> LocalFunction | None:
        """The function for a name, ``name:qualifier``, partial ARN (``account:function:name``) or full ARN."""
        name = function_name
        if name.startswith("arn:"):
            parts = name.split(":")
            # arn:aws:lambda:region:account:function:name[:qualifier]
            if len(parts) < 7 or parts[5] != "function":
                return None
            if parts[3] != self.region or parts[4] != self.account_id:
                return None
            name = parts[6]
        elif ":function:" in name:
            account, _, rest = name.partition(":function:")
            if account != self.account_id:
                return None
            name = rest.split(":")[0]
        else:
            name = name.split(":")[0]
        with self._lock:
            return self._functions.get(name)

    def _full_arn(self, function_name: str) -> str:
        if function_name.startswith("arn:"):
            return function_name
        if ":function:" in function_name:
            return f"arn:aws:lambda:{self.region}:{function_name}"
        return self._arn(function_name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._functions)

    # ------------------------------------------------------------------ invoking

    def invoke(self, function_name: str, payload: Any = None, *, raw: bytes | None = None) -> InvokeResult:
        """Run the function synchronously (RequestResponse) and return what Lambda would."""
        fn = self.resolve(function_name)
        if fn is None:
            raise LookupError(f"Function not found: {function_name}")
        body = raw if raw is not None else json.dumps({} if payload is None else payload).encode()
        return self._run(fn, body)

    def _run(self, fn: LocalFunction, body: bytes) -> InvokeResult:
        request_id = str(uuid.uuid4())
        try:
            event = json.loads(body) if body else {}
        except ValueError as exc:
            return InvokeResult(400, None, _error("InvalidRequestContentException", str(exc)), request_id)
        outcome: dict[str, Any] = {}
        context = LambdaContext(fn, request_id)

        def target() -> None:
            current_function.set(fn.name)
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                with self.serving(fn.name):
                    run_handler()
            finally:
                self._report(fn.name, time.perf_counter() - began, time.thread_time() - cpu)
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

        def run_handler() -> None:
            try:
                handler = fn.load()
            except Exception as exc:
                outcome["error"] = _error(
                    "Runtime.ImportModuleError", f"Unable to import module '{fn.handler_path}': {exc}", request_id
                )
                return
            try:
                result = handler(event, context)
            except Exception as exc:
                LOG.debug("function %s raised", fn.name, exc_info=True)
                outcome["error"] = _error(type(exc).__name__, str(exc), request_id, traceback.format_exception(exc)[1:])
                return
            try:
                outcome["payload"] = json.dumps(result).encode()
            except (TypeError, ValueError) as exc:
                outcome["error"] = _error("Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id)
                return
            if len(outcome["payload"]) > MAX_SYNC_PAYLOAD_BYTES:
                outcome["error"] = _too_large_response(len(outcome.pop("payload")), request_id)

        worker = threading.Thread(target=target, name=f"lambda-{fn.name}-{request_id[:8]}", daemon=True)
        with self._idle:
            self._in_flight += 1
        worker.start()
        worker.join(fn.timeout)
        if worker.is_alive():
            # Python cannot kill the thread: it runs on, but its result is dropped, as a timed-out sandbox's is.
            message = f"RequestId: {request_id} Error: Task timed out after {fn.timeout:.2f} seconds"
            return InvokeResult(200, "Unhandled", _error("Sandbox.Timedout", message, request_id), request_id)
        if "error" in outcome:
            return InvokeResult(200, "Unhandled", outcome["error"], request_id)
        return InvokeResult(200, None, outcome["payload"], request_id)

    def _report(self, name: str, seconds: float, cpu_seconds: float) -> None:
        with self._lock:
            used = self._usage.get(name, Usage())
            self._usage[name] = Usage(used.invocations + 1, used.seconds + seconds, used.cpu_seconds + cpu_seconds)

    @property
    def in_flight(self) -> int:
        """Handlers running now (including timed-out ones that have not returned yet)."""
        with self._idle:
            return self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no handler is running; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # ------------------------------------------------------------------ botocore hook

    def install(self) -> None:
        """Answer Invoke on every boto3/botocore session created from now on, and on the default session."""
        if self._installed:
            return
        botocore.handlers.BUILTIN_HANDLERS.append((_EVENT, self._on_invoke))
        session = boto3.DEFAULT_SESSION
        if session is not None:
            session.events.register(_EVENT, self._on_invoke, unique_id=f"stepgraph-local-{id(self)}")  # type: ignore[arg-type]
            self._sessions.append(session)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        with contextlib.suppress(ValueError):
            botocore.handlers.BUILTIN_HANDLERS.remove((_EVENT, self._on_invoke))
        for session in self._sessions:
            session.events.unregister(_EVENT, unique_id=f"stepgraph-local-{id(self)}")
        self._sessions.clear()
        self._installed = False

    def _on_invoke(
        self, params: dict[str, Any], request_signer: Any = None, **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        """botocore ``before-call`` handler: a (response, parsed) pair answers the call; None lets it through."""
        # url_path: /2015-03-31/functions/<FunctionName>/invocations (the name URL-encoded)
        path = params.get("url_path", "")
        parts = path.split("/")
        if len(parts) < 4 or parts[2] != "functions":
            return None
        function_name = unquote(parts[3])
        if self.on_invoke is not None:
            self.on_invoke(request_signer, function_name)
        fn = self.resolve(function_name)
        if fn is None:
            runner = self.sandboxed(function_name)
            if runner is not None:
                raw = params.get("body") or b""
                raw = raw.encode() if isinstance(raw, str) else raw if isinstance(raw, bytes) else raw.read()
                request_id = str(uuid.uuid4())
                function_error, payload = runner(raw)
                if len(payload) > MAX_SYNC_PAYLOAD_BYTES:
                    function_error, payload = "Unhandled", _too_large_response(len(payload), request_id)
                return _response(200, function_error, payload, request_id)
            if self.passthrough(function_name):
                return None
            return _client_error(
                404, "ResourceNotFoundException", f"Function not found: {self._full_arn(function_name)}"
            )
        headers = {k.lower(): v for k, v in (params.get("headers") or {}).items()}
        invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
        body = params.get("body") or b""
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = body.read()
        refusal = self.refuse(fn.name, body) if self.refuse is not None else None
        if refusal is not None:
            return _client_error(REFUSAL_STATUS.get(refusal, 500), refusal, f"{refusal} (injected by the local cloud)")
        if invocation_type == "DryRun":
            return _response(204, None, b"", str(uuid.uuid4()))
        if invocation_type == "RequestResponse" and len(body) > MAX_SYNC_PAYLOAD_BYTES:
            return _client_error(
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation",
            )
        if invocation_type == "Event":
            threading.Thread(target=self._run, args=(fn, body), daemon=True).start()
            return _response(202, None, b"", str(uuid.uuid4()))
        result = self._run(fn, body)
        if result.status_code >= 300:
            err = json.loads(result.payload)
            return _client_error(result.status_code, err["errorType"], err["errorMessage"])
        return _response(result.status_code, result.function_error, result.payload, result.request_id)


def _too_large_response(size: int, request_id: str) -> bytes:
    message = f"Response payload size ({size} bytes) exceeded maximum allowed payload size"
    message += f" ({MAX_SYNC_PAYLOAD_BYTES} bytes)."
    return _error("Function.ResponseSizeTooLarge", message, request_id)


def _error(error_type: str, message: str, request_id: str | None = None, stack: list[str] | None = None) -> bytes:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if request_id:
        body["requestId"] = request_id
    if stack is not None:
        body["stackTrace"] = stack
    return json.dumps(body).encode()


def _headers(values: dict[str, str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for key, value in values.items():
        headers[key] = value
    return headers


def _response(
    status: int, function_error: str | None, payload: bytes, request_id: str
) -> tuple[AWSResponse, dict[str, Any]]:
    headers = {"x-amzn-requestid": request_id, "x-amz-executed-version": "$LATEST"}
    if function_error:
        headers["x-amz-function-error"] = function_error
    http = AWSResponse("https://lambda.local/invocations", status, _headers(headers), _RawBody(payload))
    parsed: dict[str, Any] = {
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        },
        "StatusCode": status,
        "ExecutedVersion": "$LATEST",
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
    }
    if function_error:
        parsed["FunctionError"] = function_error
    return http, parsed


def _client_error(status: int, code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    body = json.dumps({"Type": "User", "message": message}).encode()
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-errortype": code, "x-amzn-requestid": request_id}
    http = AWSResponse("https://lambda.local/invocations", status, _headers(headers), _RawBody(body))
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        },
    }
    return http, parsed
