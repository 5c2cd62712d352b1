"""The WebSocket API of ``template.yaml`` on loopback: ``ws://127.0.0.1:3001/`` under ``make dev``.

Like API Gateway, ``LocalWebSockets`` turns each connection, frame and close into the WebSocket event
the API's integration function receives (``$connect`` with the request's headers and query string,
then ``subscribe``/``unsubscribe``/``$default`` by the frame's ``action``, then ``$disconnect``), and
refuses the connection when ``$connect`` answers anything but 200. A function's
``apigatewaymanagementapi`` ``PostToConnection`` is answered in-process (as Lambda invokes are): the
data goes to that live socket, or ``GoneException`` when it is gone. Each socket has its own send queue,
so a slow reader delays nobody; one that falls ``MAX_PENDING`` frames behind is closed (1008).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import botocore.handlers
from botocore.awsrequest import AWSResponse

from local.lambdas import _client_error, _headers, _RawBody

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

    from local.lambdas import LambdaDispatcher

LOG = logging.getLogger(__name__)
_EVENTS = (
    "before-call.apigatewaymanagementapi.PostToConnection",
    "before-call.apigatewaymanagementapi.DeleteConnection",
)
MAX_FRAME_BYTES = 128 * 1024
"""API Gateway's WebSocket message limit; a larger message closes the connection (1009)."""
MAX_PENDING = 10_000
ROUTE_KEYS = ("subscribe", "unsubscribe")


@dataclass
class _Socket:
    connection_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes | None]
    pending: int = 0
    closed: bool = False


@dataclass
class LocalWebSockets:
    """A WebSocket server whose frames go to ``function`` through the local Lambda dispatcher."""

    dispatcher: LambdaDispatcher
    function: str
    stage: str = "v1"
    host: str = "127.0.0.1"
    port: int = 3001
    _sockets: dict[str, _Socket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _server: Server | None = None
    _installed: bool = False
    posted: int = 0

    # ------------------------------------------------------------------ the management API

    def install(self) -> None:
        """Answer PostToConnection / DeleteConnection on every boto3 session (until ``uninstall``)."""
        if self._installed:
            return
        for event in _EVENTS:
            botocore.handlers.BUILTIN_HANDLERS.append((event, self._on_call))
            if boto3.DEFAULT_SESSION is not None:
                boto3.DEFAULT_SESSION.events.register(
                    event,
                    self._on_call,  # type: ignore[arg-type]
                    unique_id=f"local-ws-{id(self)}-{event}",
                )
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed:
            return
        for event in _EVENTS:
            with contextlib.suppress(ValueError):
                botocore.handlers.BUILTIN_HANDLERS.remove((event, self._on_call))
            if boto3.DEFAULT_SESSION is not None:
                boto3.DEFAULT_SESSION.events.unregister(event, unique_id=f"local-ws-{id(self)}-{event}")
        self._installed = False

    def _on_call(self, params: dict[str, Any], model: Any = None, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        path = str(params.get("url_path", ""))
        connection_id = path.rsplit("/", 1)[-1]
        from urllib.parse import unquote

        connection_id = unquote(connection_id)
        if getattr(model, "name", "") == "DeleteConnection":
            if not self.close(connection_id):
                return _client_error(410, "GoneException", f"connection {connection_id} is gone")
            return _ok()
        body = params.get("body") or b""
        data = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else body.read()
        if not self.post(connection_id, data):
            return _client_error(410, "GoneException", f"connection {connection_id} is gone")
        return _ok()

    def post(self, connection_id: str, data: bytes) -> bool:
        """Queue ``data`` for the socket; False when there is no such live connection."""
        with self._lock:
            socket = self._sockets.get(connection_id)
            if socket is None or socket.closed:
                return False
            if socket.pending >= MAX_PENDING:
                socket.closed = True
                socket.loop.call_soon_threadsafe(socket.queue.put_nowait, None)
                return False
            socket.pending += 1
            self.posted += 1
        socket.loop.call_soon_threadsafe(socket.queue.put_nowait, data)
        return True

    def close(self, connection_id: str) -> bool:
        with self._lock:
            socket = self._sockets.get(connection_id)
            if socket is None or socket.closed:
                return False
            socket.closed = True
        socket.loop.call_soon_threadsafe(socket.queue.put_nowait, None)
        return True

    @property
    def connections(self) -> list[str]:
        with self._lock:
            return [c for c, s in self._sockets.items() if not s.closed]

    # ------------------------------------------------------------------ the server

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    def start(self) -> LocalWebSockets:
        """Serve on ``host:port`` (port 0: any free port, then ``port`` says which) in a thread of its own."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="local-websockets", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(server.close)
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    async def _serve(self, ready: threading.Event) -> None:
        from websockets.asyncio.server import serve

        async with serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._connect,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            ping_interval=None,
        ) as server:
            self._server = server
            sockets = list(server.sockets)
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            ready.set()
            await server.wait_closed()

    async def _connect(self, connection: ServerConnection, request: Request) -> Response | None:
        from http import HTTPStatus

        connection_id = base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
        url = urlsplit(request.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        headers = {k: v for k, v in request.headers.raw_items()}
        event = self._event("$connect", "CONNECT", connection_id, connection)
        event.update(
            {
                "headers": headers,
                "multiValueHeaders": {k: [v] for k, v in headers.items()},
                "queryStringParameters": query or None,
                "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            }
        )
        status, body = await self._invoke(event)
        if status != 200:
            return connection.respond(HTTPStatus(status if 400 <= status < 600 else 500), body or "refused\n")
        connection.stepgraph_id = connection_id  # type: ignore[attr-defined]
        with self._lock:
            self._sockets[connection_id] = _Socket(connection_id, asyncio.get_running_loop(), asyncio.Queue())
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        connection_id: str = connection.stepgraph_id  # type: ignore[attr-defined]
        with self._lock:
            socket = self._sockets[connection_id]
        sender = asyncio.create_task(self._send(connection, socket))
        try:
            async for message in connection:
                event = self._event(*_route(message), connection_id, connection)
                if isinstance(message, bytes):
                    event.update({"body": base64.b64encode(message).decode(), "isBase64Encoded": True})
                else:
                    event.update({"body": message, "isBase64Encoded": False})
                await self._invoke(event)
        except Exception:  # a connection dropping mid-frame ends only this connection
            LOG.debug("connection %s ended", connection_id, exc_info=True)
        finally:
            with self._lock:
                socket.closed = True
                self._sockets.pop(connection_id, None)
            socket.queue.put_nowait(None)
            await self._invoke(self._event("$disconnect", "DISCONNECT", connection_id, connection))
            with contextlib.suppress(Exception):
                await sender

    async def _send(self, connection: ServerConnection, socket: _Socket) -> None:
        while True:
            data = await socket.queue.get()
            if data is None:
                if socket.closed:
                    with contextlib.suppress(Exception):
                        await connection.close(1008, "closed by the server")
                return
            with self._lock:
                socket.pending -= 1
            try:
                await connection.send(data.decode(errors="replace"))
            except Exception:
                return

    def _event(self, route: str, kind: str, connection_id: str, connection: ServerConnection) -> dict[str, Any]:
        now = int(time.time() * 1000)
        remote = connection.remote_address
        return {
            "requestContext": {
                "routeKey": route,
                "eventType": kind,
                "messageDirection": "IN",
                "connectionId": connection_id,
                "connectedAt": now,
                "requestTimeEpoch": now,
                "requestId": str(uuid.uuid4()),
                "messageId": str(uuid.uuid4()) if kind == "MESSAGE" else None,
                "domainName": f"{self.host}:{self.port}",
                "stage": self.stage,
                "apiId": "local",
                "identity": {"sourceIp": remote[0] if remote else "127.0.0.1"},
            },
            "isBase64Encoded": False,
        }

    async def _invoke(self, event: dict[str, Any]) -> tuple[int, str]:
        """Call the integration function (off the event loop); its status code and body."""
        try:
            result = await asyncio.to_thread(self.dispatcher.invoke, self.function, event)
        except Exception:
            LOG.exception("the WebSocket function could not be invoked")
            return 500, "internal error\n"
        if result.function_error is not None:
            LOG.warning("the WebSocket function failed: %s", result.payload[:500])
            return 500, "internal error\n"
        answer = result.json()
        if not isinstance(answer, dict):
            return 200, ""
        return int(answer.get("statusCode", 200)), str(answer.get("body") or "")


def _route(message: str | bytes) -> tuple[str, str]:
    """The route API Gateway picks (``$request.body.action``): a known action, else ``$default``."""
    if isinstance(message, str):
        try:
            action = json.loads(message).get("action")
        except (ValueError, AttributeError, RecursionError):
            action = None
        if action in ROUTE_KEYS:
            return str(action), "MESSAGE"
    return "$default", "MESSAGE"


def _ok() -> tuple[AWSResponse, dict[str, Any]]:
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-requestid": request_id}
    http = AWSResponse("https://execute-api.local/@connections", 200, _headers(headers), _RawBody(b""))
    return http, {"ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": 200, "HTTPHeaders": headers}}
