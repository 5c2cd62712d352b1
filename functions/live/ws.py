"""The WebSocket API's function: ``$connect`` (API key), ``$disconnect``, ``subscribe``, ``unsubscribe``.

API Gateway routes each frame by its ``action`` (``$default`` when it has none or an unknown one) and
calls this function with the WebSocket event. ``$connect`` refuses (401) a connection without the
stack's API key (header ``x-api-key``, or query parameter ``api_key`` for browsers, which cannot set
headers on a WebSocket). A bad frame gets ``{"type": "error", "error": {"code", "message"}}`` posted
back to its connection; nothing a client sends makes the function fail.

``subscribe`` only records the subscription: the stream function sends the backlog and every new
event (functions/live/stream.py), so a subscriber gets each event once, in ``seq`` order.
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import NotFoundError
from functions.live.push import ApiGatewayPoster, GoneError
from functions.live.subscriptions import Subscriptions, TooManySubscriptions
from functions.settings import PerSettings, Settings, get_settings
from functions.store.runs import RunStore

logger = Logger(service="stepgraph-live")

RUN_ID = re.compile(r"r_[0-9a-f]{16}")
MAX_MESSAGE_BYTES = 8 * 1024
"""A subscribe or unsubscribe message is well under 200 bytes; anything this large is not one."""
MAX_AFTER = 10**10


class Refused(Exception):
    """A frame that gets an ``error`` frame back."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ApiKeySource:
    """The key connections must present: ``STEPGRAPH_API_KEY`` locally, else the stack's API Gateway key
    (``STEPGRAPH_API_KEY_ID``), read once per instance."""

    def __init__(self, apigateway: Any = None) -> None:
        self._client = apigateway
        self._value: str | None = None
        self._lock = threading.Lock()

    def value(self, settings: Settings) -> str | None:
        if settings.api_key:
            return settings.api_key
        with self._lock:
            if self._value is None and settings.api_key_id:
                client = self._client or boto3.client("apigateway", region_name=settings.region)
                self._client = client
                try:
                    self._value = str(client.get_api_key(apiKey=settings.api_key_id, includeValue=True)["value"])
                except (ClientError, BotoCoreError, KeyError):
                    logger.exception("could not read the API key; refusing connections")
            return self._value


class WebSocketHandler:
    """The function's logic with its collaborators (injected in tests, made on first use otherwise)."""

    def __init__(self, *, table: Any = None, poster: Any = None, keys: ApiKeySource | None = None) -> None:
        self.subscriptions = Subscriptions(table)
        self.runs = RunStore(table)
        self.poster = poster or ApiGatewayPoster()
        self.keys = keys or ApiKeySource()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        context = event.get("requestContext") or {}
        route = str(context.get("routeKey") or "$default")
        connection_id = str(context.get("connectionId") or "")
        if not connection_id:
            return {"statusCode": 400, "body": "not a WebSocket event"}
        if route == "$connect":
            return self.connect(event, connection_id)
        if route == "$disconnect":
            self.subscriptions.disconnect(connection_id)
            return {"statusCode": 200}
        try:
            message = self._message(event)
            if route == "subscribe" and message.get("action") == "subscribe":
                self.subscribe(connection_id, message)
            elif route == "unsubscribe" and message.get("action") == "unsubscribe":
                self.unsubscribe(connection_id, message)
            else:
                action = message.get("action")
                raise Refused(
                    "bad_request",
                    f"unknown action {action!r}: send subscribe or unsubscribe"
                    if action is not None
                    else "a message needs an action: subscribe or unsubscribe",
                )
        except Refused as refused:
            self._error(connection_id, refused.code, refused.message)
        return {"statusCode": 200}

    # -- routes -----------------------------------------------------------------------------------

    def connect(self, event: dict[str, Any], connection_id: str) -> dict[str, Any]:
        expected = self.keys.value(get_settings())
        given = _header(event, "x-api-key") or (event.get("queryStringParameters") or {}).get("api_key") or ""
        if not expected or not hmac.compare_digest(str(given).encode(), expected.encode()):
            logger.info("connection refused: missing or wrong API key")
            return {"statusCode": 401, "body": "missing or wrong API key (header x-api-key or query api_key)"}
        source_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
        self.subscriptions.connect(connection_id, source_ip=source_ip)
        return {"statusCode": 200}

    def subscribe(self, connection_id: str, message: dict[str, Any]) -> None:
        run_id = _run_id(message)
        after = message.get("after", 0)
        if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < MAX_AFTER:
            raise Refused("bad_request", "after must be a whole number >= 0 (the seq of the last event you have)")
        try:
            self.runs.get(run_id)
        except NotFoundError:
            raise Refused("not_found", f"no run {run_id!r}") from None
        try:
            self.subscriptions.subscribe(connection_id, run_id, after)
        except TooManySubscriptions as exc:
            raise Refused(
                "limit_exceeded",
                f"a connection follows at most {exc.most} runs at once: unsubscribe from one (or open another"
                " connection)",
            ) from None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise Refused("bad_request", "this connection is not open (connect again)") from None
            raise

    def unsubscribe(self, connection_id: str, message: dict[str, Any]) -> None:
        run_id = _run_id(message)
        if not self.subscriptions.unsubscribe(connection_id, run_id):
            raise Refused("not_found", f"this connection does not follow run {run_id!r}")

    # -- pieces -----------------------------------------------------------------------------------

    def _message(self, event: dict[str, Any]) -> dict[str, Any]:
        body = event.get("body")
        if event.get("isBase64Encoded") or not isinstance(body, str):
            raise Refused("bad_request", "messages are JSON text frames")
        if len(body.encode()) > MAX_MESSAGE_BYTES:
            raise Refused("bad_request", f"message over {MAX_MESSAGE_BYTES} bytes")
        try:
            message = json.loads(body)
        except ValueError:
            raise Refused("bad_request", "the message is not JSON") from None
        except RecursionError:
            raise Refused("bad_request", "the message nests too deep to read") from None
        if not isinstance(message, dict):
            raise Refused("bad_request", "the message must be a JSON object with an action")
        return message

    def _error(self, connection_id: str, code: str, message: str) -> None:
        frame = json.dumps({"type": "error", "error": {"code": code, "message": message}}).encode()
        try:
            self.poster.post(connection_id, frame)
        except GoneError:
            self.subscriptions.disconnect(connection_id)
        except (ClientError, BotoCoreError):
            logger.warning("could not post an error frame", exc_info=True)


def _run_id(message: dict[str, Any]) -> str:
    run_id = message.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise Refused("bad_request", "run_id must be a run id (r_ and 16 hex digits)")
    return run_id


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


_handler: PerSettings[WebSocketHandler] = PerSettings(WebSocketHandler)


def get_handler() -> WebSocketHandler:
    """The handler of this process, made on first use and again when the settings were re-read."""
    return _handler.get()


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        return {"statusCode": 400, "body": "not a WebSocket event"}
    return get_handler()(event)
