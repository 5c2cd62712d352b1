"""Posting frames to WebSocket connections through the API Gateway management API.

``Outbox`` collects the frames a stream batch produces, per connection and in order, then posts them
with one worker per connection: a slow or vanished subscriber delays no other, and a connection that
is gone (``GoneException``) is removed with its subscriptions.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.settings import get_settings

if TYPE_CHECKING:
    from functions.live.subscriptions import Subscriptions

LOG = logging.getLogger(__name__)
MAX_WORKERS = 16
MAX_FRAME_BYTES = 32 * 1024
"""API Gateway WebSocket frames are at most 32 KB."""


class GoneError(Exception):
    """The connection no longer exists (the client went away)."""


class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> None: ...


class ApiGatewayPoster:
    """PostToConnection on the WebSocket API's management endpoint (``STEPGRAPH_WS_ENDPOINT``)."""

    def __init__(self, client: Any = None, endpoint: str | None = None) -> None:
        self._client = client
        self._endpoint = endpoint
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                settings = get_settings()
                self._client = boto3.client(
                    "apigatewaymanagementapi",
                    endpoint_url=self._endpoint or settings.ws_endpoint or None,
                    region_name=settings.region,
                    config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5),
                )
            return self._client

    def post(self, connection_id: str, data: bytes) -> None:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "GoneException":
                raise GoneError(connection_id) from exc
            raise


def frame(message: dict[str, Any]) -> bytes:
    """A JSON text frame; an event whose message or error would not fit a frame is shortened."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) <= MAX_FRAME_BYTES or message.get("type") != "event":
        return data
    event = dict(message["event"])
    event["message"] = str(event.get("message", ""))[:2000]
    if isinstance(event.get("error"), dict):
        event["error"] = {k: str(v)[:2000] for k, v in event["error"].items()}
    return json.dumps({**message, "event": event}, separators=(",", ":"), ensure_ascii=False).encode()


class Outbox:
    """Frames to send, per connection in order; ``flush`` posts them, connections in parallel."""

    def __init__(self, poster: Poster, subscriptions: Subscriptions) -> None:
        self.poster = poster
        self.subscriptions = subscriptions
        self._frames: dict[str, list[bytes]] = {}
        self.gone: set[str] = set()

    def add(self, connection_id: str, message: dict[str, Any]) -> None:
        self._frames.setdefault(connection_id, []).append(frame(message))

    def __len__(self) -> int:
        return sum(len(f) for f in self._frames.values())

    def flush(self) -> int:
        """Post everything collected; the number of frames delivered."""
        pending, self._frames = self._frames, {}
        if not pending:
            return 0
        workers = min(MAX_WORKERS, len(pending))
        if workers == 1:
            return sum(self._send(c, f) for c, f in pending.items())
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ws-post") as pool:
            return sum(pool.map(lambda entry: self._send(*entry), pending.items()))

    def _send(self, connection_id: str, frames: list[bytes]) -> int:
        sent = 0
        for data in frames:
            try:
                self.poster.post(connection_id, data)
            except GoneError:
                self.gone.add(connection_id)
                try:
                    self.subscriptions.disconnect(connection_id)
                except (ClientError, BotoCoreError):
                    LOG.warning("could not remove gone connection %s", connection_id, exc_info=True)
                return sent
            except (ClientError, BotoCoreError):
                # A subscriber we cannot reach now misses these frames; it must not hold up the others.
                LOG.warning("could not post to connection %s; dropping its frames", connection_id, exc_info=True)
                return sent
            sent += 1
        return sent
