"""The HTTP client of the stepgraph API (the local stack by default, or a deployed one), with retries that never
repeat a write, and readers of the API's response shapes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from stepgraph_cli.errors import EXIT_API, ApiError, CliError

if TYPE_CHECKING:
    import argparse

    from tenacity.wait import wait_base

DEFAULT_API = "http://127.0.0.1:3000"
DEFAULT_API_KEY = "local-dev-key"

THROTTLED = 429
UNAVAILABLE = {502, 503, 504}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class _TryAgain(Exception):
    """An answer worth retrying (throttled, or the service briefly unavailable)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Api:
    """A thin client of the stepgraph HTTP API: JSON in, JSON (or text) out, errors as ``ApiError``.

    Throttling (429) and connections that never reached the API are retried with full-jitter exponential
    backoff; 502/503/504 and read timeouts only for requests that are safe to repeat (reads, or writes that
    carry an ``Idempotency-Key``), so a retry never does a write twice.
    """

    def __init__(self, client: httpx.Client, *, attempts: int = 4, wait: wait_base | None = None) -> None:
        self.client = client
        self.attempts = attempts
        self.wait = wait if wait is not None else wait_random_exponential(multiplier=0.25, max=8)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.get("headers") or {}
        repeatable = method.upper() in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in headers)
        retried: tuple[type[BaseException], ...] = (_TryAgain, httpx.ConnectError)
        if repeatable:
            retried += (httpx.ReadTimeout, httpx.RemoteProtocolError)

        def send() -> httpx.Response:
            response = self.client.request(method, path, **kwargs)
            if response.status_code == THROTTLED or (repeatable and response.status_code in UNAVAILABLE):
                raise _TryAgain(response)
            return response

        try:
            response = Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=self.wait,
                retry=retry_if_exception_type(retried),
                reraise=True,
            )(send)
        except _TryAgain as exc:
            response = exc.response
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the API at {self.client.base_url}: {exc}. Is the local stack running (`make dev`)? "
                "Use --api or STEPGRAPH_API for another address.",
                EXIT_API,
            ) from exc
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)


def make_client(args: argparse.Namespace) -> httpx.Client:
    """An ``httpx.Client`` on ``--api`` (or ``STEPGRAPH_API``, or the local stack) sending the API key."""
    base = getattr(args, "api", None) or os.environ.get("STEPGRAPH_API") or DEFAULT_API
    key = getattr(args, "api_key", None) or os.environ.get("STEPGRAPH_API_KEY") or DEFAULT_API_KEY
    return httpx.Client(base_url=base, headers={"x-api-key": key, "user-agent": "stepgraph-cli"}, timeout=30.0)


def items_of(body: Any, *keys: str) -> list[dict[str, Any]]:
    """The list in a listing response, whichever of the usual keys holds it."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in (*keys, "items"):
            if isinstance(body.get(key), list):
                return list(body[key])
    return []


def spec_of(graph: Any) -> dict[str, Any]:
    """The spec inside a ``GET /graphs/{id}`` body (top-level ``spec`` or the latest version's)."""
    if not isinstance(graph, dict):
        return {}
    if isinstance(graph.get("spec"), dict):
        return dict(graph["spec"])
    versions = graph.get("versions")
    if isinstance(versions, list) and versions and isinstance(versions[-1], dict):
        return dict(versions[-1].get("spec") or {})
    return {}
