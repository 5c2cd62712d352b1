"""The API Gateway shim: a WSGI app turning HTTP requests into REST API proxy events (payload format 1.0)
for the API function, and the function's proxy response back into HTTP.

Routes come from the ``Api`` events in ``template.yaml`` (``/health``, ``/{proxy+}`` ...), matched most
specific first as API Gateway does. The API key is not checked here: in AWS API Gateway checks it, locally
the API function does (``STEPGRAPH_API_KEY``). The header's value is passed as ``identity.apiKey``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable
    from wsgiref.types import StartResponse, WSGIEnvironment

    from local.lambdas import LambdaDispatcher
    from local.template import ApiRoute

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "application/yaml")

_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class ApiGatewayShim:
    """WSGI application in front of the dispatcher; one instance per local stack."""

    def __init__(
        self, dispatcher: LambdaDispatcher, routes: list[ApiRoute], function_names: dict[str, str], stage: str
    ) -> None:
        self.dispatcher = dispatcher
        self.routes = routes
        self.function_names = function_names  # logical id -> function name
        self.stage = stage
        self.account_id = dispatcher.account_id

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"].upper()
        try:
            path = request_path(environ)
        except UnicodeDecodeError:
            return _refuse(start_response, 400, "Bad Request: the path is not UTF-8")
        route, path_params = self._route(method, path)
        if route is None:
            # API Gateway's answer for a resource/method that does not exist (with a key it says 403 too).
            return _reply(start_response, 403, {"content-type": "application/json"},
                          b'{"message":"Missing Authentication Token"}')  # fmt: skip
        try:
            body = read_body(environ, MAX_BODY_BYTES)
        except BadRequestBody as exc:
            return _refuse(start_response, exc.status, exc.message)
        event = self.build_event(environ, method, path, route, path_params, body)
        function = self.function_names[route.function]
        result = self.dispatcher.invoke(function, event)
        if result.function_error:
            # API Gateway hides the function's error: 502 with a fixed message.
            return _reply(start_response, 502, {"content-type": "application/json"},
                          b'{"message": "Internal server error"}')  # fmt: skip
        return self._response(start_response, result.json())

    def _route(self, method: str, path: str) -> tuple[ApiRoute | None, dict[str, str]]:
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None, {}

    def build_event(
        self,
        environ: WSGIEnvironment,
        method: str,
        path: str,
        route: ApiRoute,
        path_params: dict[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        """The REST API proxy integration event (payload format 1.0) for this request."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = _header_name(key[5:])
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                name = _header_name(key)
            else:
                continue
            # WSGI has already joined repeated headers with ", "; API Gateway would list them separately.
            headers[name] = str(value)
            multi_headers[name] = [str(value)]
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for k, v in query:
            multi_query.setdefault(k, []).append(v)
        single_query = {k: vs[-1] for k, vs in multi_query.items()}
        content_type = headers.get("Content-Type", "")
        is_text = not body or any(content_type.lower().startswith(t) for t in _TEXT_TYPES)
        if is_text:
            try:
                body_value: str | None = body.decode("utf-8") if body else None
                is_b64 = False
            except UnicodeDecodeError:
                body_value, is_b64 = base64.b64encode(body).decode(), True
        else:
            body_value, is_b64 = base64.b64encode(body).decode(), True
        api_key = _first(headers, "x-api-key")
        now = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        source_ip = environ.get("REMOTE_ADDR") or "127.0.0.1"
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": single_query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": route.path,
                "httpMethod": method,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "path": f"/{self.stage}{path}",
                "accountId": self.account_id,
                "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "stage": self.stage,
                "domainPrefix": "local",
                "requestTimeEpoch": int(time.time() * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "apiKey": api_key,
                    "apiKeyId": "local" if api_key else None,
                    "sourceIp": source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": _first(headers, "user-agent"),
                    "user": None,
                },
                "domainName": _first(headers, "host") or "localhost",
                "apiId": "local",
            },
            "body": body_value,
            "isBase64Encoded": is_b64,
        }

    def _response(self, start_response: StartResponse, result: Any) -> Iterable[bytes]:
        if not isinstance(result, dict) or "statusCode" not in result:
            return _reply(start_response, 502, {"content-type": "application/json"},
                          b'{"message": "Internal server error"}')  # fmt: skip
        status = int(result["statusCode"])
        pairs: list[tuple[str, str]] = []
        single = result.get("headers") or {}
        multi = result.get("multiValueHeaders") or {}
        for name, values in multi.items():
            pairs.extend((name, str(v)) for v in values)
        for name, value in single.items():
            if name not in multi:
                pairs.append((name, str(value)))
        raw_body = result.get("body")
        if raw_body is None:
            data = b""
        elif result.get("isBase64Encoded"):
            data = base64.b64decode(raw_body)
        else:
            data = raw_body.encode() if isinstance(raw_body, str) else json.dumps(raw_body).encode()
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("Content-Type", "application/json"))
        pairs = [(k, v) for k, v in pairs if k.lower() != "content-length"]
        pairs.append(("Content-Length", str(len(data))))
        start_response(f"{status} {_REASONS.get(status, 'Unknown')}", pairs)
        return [data]


class BadRequestBody(Exception):
    """A request whose body cannot be read as sent (answered before the function is invoked)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def request_path(environ: WSGIEnvironment) -> str:
    """The request path, percent-decoded once, as UTF-8 (``UnicodeDecodeError`` when it is not UTF-8).

    Read from the raw request target when the server gives it (werkzeug's ``RAW_URI``): ``PATH_INFO`` is
    already decoded, with bytes that are not UTF-8 silently replaced. Otherwise ``PATH_INFO`` holds the
    decoded bytes as latin-1 text (PEP 3333), or text already (some test transports).
    """
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        target = urlsplit(raw_uri).path if "://" in raw_uri else raw_uri.split("?", 1)[0]
        return unquote_to_bytes(target).decode("utf-8") or "/"
    raw = environ.get("PATH_INFO", "") or "/"
    try:
        return raw.encode("latin-1").decode("utf-8") or "/"
    except UnicodeEncodeError:
        return raw


def read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    """The request body: ``Content-Length`` bytes, or a chunked body to its end; at most ``limit`` bytes.

    Raises :class:`BadRequestBody` for a malformed or negative ``Content-Length`` (400) or a body over the
    limit (413), without reading what the client sent.
    """
    stream = environ["wsgi.input"]
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if declared:
        if not declared.isdigit():  # "abc", "-1", "+5", "1.0": never trusted, never waited on
            raise BadRequestBody(400, f"Bad Request: malformed Content-Length {declared[:40]!r}")
        length = int(declared)
        if length > limit:
            raise BadRequestBody(413, "Request Too Long")
        return bytes(stream.read(length)) if length else b""
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and no chunked framing: no body
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(bytes(chunk))
        size += len(chunk)
        if size > limit:
            raise BadRequestBody(413, "Request Too Long")


def _refuse(start_response: StartResponse, status: int, message: str) -> Iterable[bytes]:
    """An API Gateway style error before the function runs; the connection closes (its body may be unread)."""
    body = json.dumps({"message": message}).encode()
    return _reply(start_response, status, {"content-type": "application/json", "Connection": "close"}, body)


def _header_name(key: str) -> str:
    return "-".join(part.capitalize() for part in key.lower().split("_"))


def _first(headers: dict[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _reply(start_response: StartResponse, status: int, headers: dict[str, str], body: bytes) -> Iterable[bytes]:
    pairs = [*headers.items(), ("Content-Length", str(len(body)))]
    start_response(f"{status} {_REASONS.get(status, 'Unknown')}", pairs)
    return [body]
