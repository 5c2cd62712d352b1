"""``http.get``: GET a URL, safe by default (see ``_netguard``): redirects re-checked, size and time capped."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from functions.errors import UnsupportedScheme
from functions.executor.tools._http_errors import (
    BadRedirect,
    HttpConnectionError,
    HttpTimeout,
    InvalidUrl,
    ResponseTooDeep,
    ResponseTooLarge,
    TooManyRedirects,
)
from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import httpx

    from functions.executor.tools.base import ToolContext

NAME = "http.get"
DESCRIPTION = "GET an http(s) URL on the public internet; output {status_code, headers, json, text}."

MAX_REDIRECTS = 5
MAX_JSON_DEPTH = 200
"""Deepest nesting of a JSON body parsed into ``json`` (deeper is ``ResponseTooDeep``)."""
MAX_BYTES = 5 * 1024 * 1024
MAX_SECONDS = 60.0
USER_AGENT = "stepgraph-http.get/0.1"


class Params(StrictParams):
    url: str = Field(min_length=1, max_length=8192, description="An http or https URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (not Host).")
    query: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Query parameters added to the URL."
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=MAX_SECONDS, description="Whole-request time limit, redirects included."
    )
    max_bytes: int = Field(
        default=MAX_BYTES, ge=1, le=MAX_BYTES, description="Largest (decoded) body accepted; more is an error."
    )
    follow_redirects: bool = Field(default=True, description=f"Follow up to {MAX_REDIRECTS} redirects, each checked.")

    @field_validator("headers")
    @classmethod
    def _no_framing(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            lowered = name.strip().lower()
            if lowered == "host":
                raise ValueError("the Host header comes from the URL")
            if lowered in _FRAMING:
                raise ValueError(f"the {name} header is set by http.get itself (it describes the request's framing)")
        return headers


class Output(BaseModel):
    status_code: int
    headers: dict[str, str] = Field(description="Response headers, names lowercased; repeated ones joined by ', '.")
    json_: Any = Field(alias="json", description="The body parsed as JSON when Content-Type says JSON, else null.")
    text: str = Field(description="The body decoded as text (charset from Content-Type, else UTF-8).")
    url: str = Field(description="The final URL, after redirects.")
    redirects: list[str] = Field(description="The URLs redirected to, in order.")
    bytes: int = Field(description="Body size in bytes (decoded).")


_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"})
# Sent on to another origin after a redirect: nothing else, since any other header may carry a credential
# (Authorization, Cookie, X-Api-Key, X-Auth-Token, a vendor's own...).
_CROSS_ORIGIN_SAFE = frozenset(
    {"user-agent", "accept", "accept-language", "accept-encoding", "cache-control", "pragma", "if-none-match"}
)
_SECRET_QUERY = re.compile(
    r"(?i)^(?:.*[-_.])?(?:token|key|apikey|secret|password|passwd|pwd|pass|sig|signature|auth|authorization|"
    r"credential|credentials|session|sessionid|jwt|code)$"
)
REDACTED = "REDACTED"


def redact(url: httpx.URL | str) -> str:
    """``url`` with its user info and the values of credential-like query parameters replaced by ``REDACTED``."""
    import httpx

    try:
        parsed = httpx.URL(str(url))
    except httpx.InvalidURL:
        return "(invalid URL)"
    if parsed.userinfo:
        parsed = parsed.copy_with(username=REDACTED, password=None)
    if parsed.query:
        pairs = parsed.params.multi_items()
        if any(_SECRET_QUERY.match(k) for k, _ in pairs):
            parsed = parsed.copy_with(params=[(k, REDACTED if _SECRET_QUERY.match(k) else v) for k, v in pairs])
    return str(parsed)


def _read_capped(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes and "content-encoding" not in response.headers:
        raise ResponseTooLarge(f"response is {int(length)} bytes; the limit is {max_bytes}")
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"response is over the limit of {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise HttpTimeout("response took longer than the time limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _scrub(exc: Exception, url: httpx.URL) -> str:
    """An exception's text without the URL's credentials."""
    text = str(exc) or type(exc).__name__
    return text.replace(str(url), redact(url)) if str(url) != redact(url) else text


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` (iterative: no recursion however deep)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _as_json(body: bytes, content_type: str) -> Any:
    if "json" not in content_type.lower() or not body.strip():
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        raise ResponseTooDeep(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        return None
    if _depth_over(value, MAX_JSON_DEPTH):
        raise ResponseTooDeep(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def fetch(
    params: Params,
    allow_hosts: Iterable[str] = (),
    *,
    resolver: Callable[..., list[Any]] | None = None,
    transport: httpx.BaseTransport | None = None,
    log: Callable[[str], None] | None = None,
) -> Output:
    """GET ``params.url`` through the guard; ``resolver`` and the inner ``transport`` are for tests."""
    import httpx

    from functions.executor.tools import _netguard

    deadline = time.monotonic() + params.timeout_seconds
    if resolver is None:
        guard = _netguard.AddressGuard(allow_hosts, deadline=deadline)
    else:
        guard = _netguard.AddressGuard(allow_hosts, resolver, deadline=deadline)
    pinned = _netguard.PinnedTransport(guard, transport)
    try:
        url = httpx.URL(params.url)
        if params.query:
            url = url.copy_merge_params(params.query)
    except httpx.InvalidURL as exc:
        raise InvalidUrl(f"invalid URL {redact(params.url)!r}: {exc}") from None
    origin = url.copy_with(path="/", query=None, fragment=None)
    headers = {"User-Agent": USER_AGENT, **params.headers}
    redirects: list[str] = []
    with httpx.Client(transport=pinned, follow_redirects=False, trust_env=False) as client:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HttpTimeout(f"no response within {params.timeout_seconds:g}s")
            if url.scheme not in _netguard.SCHEMES:  # before build_request, which drops a host-less URL's scheme
                raise UnsupportedScheme(f"scheme {url.scheme or '(none)'!r} is not allowed: only http and https")
            request = client.build_request("GET", url, headers=headers, timeout=httpx.Timeout(remaining))
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise HttpTimeout(f"GET {redact(url)} timed out after {params.timeout_seconds:g}s") from None
            except httpx.TransportError as exc:
                raise HttpConnectionError(f"GET {redact(url)} failed: {_scrub(exc, url)}") from None
            try:
                if response.is_redirect and params.follow_redirects:
                    if len(redirects) >= MAX_REDIRECTS:
                        raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects (last to {redact(url)})")
                    location = response.headers.get("location", "").strip()
                    if not location:
                        raise BadRedirect(f"{response.status_code} redirect from {redact(url)} has no Location header")
                    try:
                        url = url.join(location)
                    except httpx.InvalidURL as exc:
                        raise BadRedirect(f"redirect to an invalid URL {redact(location)!r}: {exc}") from None
                    redirects.append(redact(url))
                    if log:
                        log(f"redirect {response.status_code} to {redact(url)}")
                    if url.copy_with(path="/", query=None, fragment=None) != origin:
                        headers = {k: v for k, v in headers.items() if k.lower() in _CROSS_ORIGIN_SAFE}
                    continue
                try:
                    body = _read_capped(response, params.max_bytes, deadline)
                except httpx.TimeoutException:
                    raise HttpTimeout(f"reading {redact(url)} timed out") from None
                except httpx.TransportError as exc:
                    raise HttpConnectionError(f"reading {redact(url)} failed: {_scrub(exc, url)}") from None
            finally:
                response.close()
            break
    content_type = response.headers.get("content-type", "")
    return Output.model_validate(
        {
            "status_code": response.status_code,
            "headers": {k.lower(): ", ".join(response.headers.get_list(k)) for k in response.headers},
            "json": _as_json(body, content_type),
            "text": body.decode(response.encoding or "utf-8", errors="replace"),
            "url": redact(url),
            "redirects": redirects,
            "bytes": len(body),
        }
    )


def run(params: Params, ctx: ToolContext) -> Output:
    if ctx.deadline is not None:  # never wait past the node's timeout
        params = params.model_copy(update={"timeout_seconds": max(0.001, ctx.remaining(params.timeout_seconds))})
    return fetch(params, ctx.settings.http_allow_hosts, log=ctx.log)
