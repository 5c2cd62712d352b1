"""The API's resolver: one ``APIGatewayRestResolver`` with validation, the routers, auth and the docs.

Checks that must come before request validation (CORS preflight, the API key and the body size) run in
``StepgraphResolver.resolve``; everything else is a route. Errors become responses in ``errors.py`` only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

from functions.api import errors
from functions.api.cors import header, preflight_response, with_cors
from functions.api.errors import UnsupportedMediaTypeError
from functions.api.routes import console, graphs, health, runs, schedules, tools
from functions.errors import BadRequestError, PayloadTooLargeError, UnauthorizedError
from functions.settings import get_settings
from statemachine import jsonlimits
from statemachine.errors import JsonInputError, LimitError
from statemachine.spec import MAX_BODY_BYTES

if TYPE_CHECKING:
    import re

    from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DOCS_PATH = "/docs"
PUBLIC_PATHS = frozenset({"/health", DOCS_PATH, "/openapi.json", "/console"})
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]
TITLE = "stepgraph"
API_VERSION = "1.0.0"


def _lower_media_type(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    media_type, sep, params = value.partition(";")
    return media_type.strip().lower() + sep + params


def _with_lowercase_media_type(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event with its Content-Type media type in lower case: media types are case-insensitive (RFC 9110),
    and Powertools' body validation compares them as written."""
    changed: dict[str, Any] = {}
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field)
        if not isinstance(headers, Mapping):
            continue
        fixed = {
            key: ([_lower_media_type(v) for v in value] if isinstance(value, list) else _lower_media_type(value))
            if str(key).lower() == "content-type"
            else value
            for key, value in headers.items()
        }
        if fixed != headers:
            changed[field] = fixed
    return {**event, **changed} if changed else event


def preflight(event: Mapping[str, Any]) -> tuple[Exception | None, Mapping[str, Any]]:
    """Checks made before routing: the API key (when configured), a JSON body of at most 256 KiB within
    the limits of ``statemachine.jsonlimits`` (depth, numbers, valid Unicode).

    Returns the refusal, if any, and the event to route, its body base64-decoded when API Gateway
    encoded it (so the resolver always sees text).
    """
    if not isinstance(event, Mapping):
        return BadRequestError("not an API Gateway proxy event"), {}
    path = str(event.get("path") or "/")
    expected = get_settings().api_key
    if expected and path not in PUBLIC_PATHS:
        given = header(event, "x-api-key") or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return UnauthorizedError("missing or wrong API key (header x-api-key)"), event
    body = event.get("body")
    if not body:
        return None, event
    content_type = (header(event, "content-type") or "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        message = f"the request body must be JSON (Content-Type: application/json), not {content_type!r}"
        return UnsupportedMediaTypeError(message), event
    event = _with_lowercase_media_type(event)
    if not isinstance(body, str):
        return BadRequestError("the request body must be text"), event
    try:
        data = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode()
    except (binascii.Error, ValueError, UnicodeError):
        return BadRequestError("the request body is not valid base64"), event
    if len(data) > MAX_BODY_BYTES:
        message = f"the request body is {len(data)} bytes, over the limit of {MAX_BODY_BYTES} bytes"
        return PayloadTooLargeError(message), event
    if event.get("isBase64Encoded"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return BadRequestError("the request body is not UTF-8 JSON"), event
        event = {**event, "body": text, "isBase64Encoded": False}
    if str(event.get("httpMethod") or "").upper() not in BODY_METHODS:
        return None, event  # no route of these reads a body
    try:  # strict and bounded: NaN, lone surrogates, huge numbers or deep nesting never reach a route
        jsonlimits.loads(event["body"])
    except (JsonInputError, LimitError) as exc:
        return exc, event
    return None, event


class _RequestState(threading.local):
    """What the resolver knows about the request it is routing, one per thread."""

    def __init__(self) -> None:
        self.event: Any = None
        self.lambda_context: Any = None
        self.context: dict[str, Any] = {}


class StepgraphResolver(APIGatewayRestResolver):
    """The Powertools REST resolver with the pre-routing checks of ``preflight`` and CORS (``cors.py``), safe to
    call from threads.

    Powertools keeps the request being routed on the resolver (and ``current_event`` on ``BaseRouter`` itself):
    two requests routed at once would read each other's event, path parameters and body. Here that state is
    per thread, so concurrent invocations (the local cloud's threads) are independent, as Lambda instances are.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._request = _RequestState()
        super().__init__(*args, **kwargs)

    @property
    def current_event(self) -> Any:
        return self._request.event

    @current_event.setter
    def current_event(self, value: Any) -> None:
        self._request.event = value

    @property
    def lambda_context(self) -> Any:
        return self._request.lambda_context

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._request.lambda_context = value

    @property
    def context(self) -> dict[str, Any]:
        return self._request.context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._request.context = value

    _docs_enabled = False

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = r"^{}/*\Z") -> re.Pattern[str]:
        """A route's pattern, ending at the path's end: Powertools ends it with ``$``, which also matches before
        a final newline, so ``GET /tools/%0A`` was answered as ``GET /tools``."""
        return ApiGatewayResolver._compile_regex(rule, base_regex)

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        origins = get_settings().cors_origins
        if isinstance(event, Mapping) and str(event.get("httpMethod") or "").upper() == "OPTIONS":
            return preflight_response(event, origins)
        refused, event = preflight(event)
        if refused is not None:
            return with_cors(errors.proxy_response(refused), event, origins)
        if event.get("path") == DOCS_PATH and not self._docs_enabled:
            self.enable_docs()
        # Powertools also sets the class-wide BaseRouter.current_event; nothing here reads that one.
        self.current_event = self._to_proxy_event(dict(event))
        self.lambda_context = context
        return with_cors(super().resolve(event, context), event, origins)

    def enable_docs(self) -> None:
        """Swagger UI at ``/docs``, registered on its first request: it builds Powertools' OpenAPI models,
        which would otherwise cost every cold start (a fifth of the API's import) for a page rarely read."""
        self.enable_swagger(
            path=DOCS_PATH, title=TITLE, version=API_VERSION, security_schemes=security_schemes(), security=SECURITY
        )
        self._docs_enabled = True


app = StepgraphResolver(enable_validation=True)
errors.register(app)
for module in (health, tools, graphs, runs, schedules, console):
    app.include_router(module.router)


def security_schemes() -> dict[str, SecurityScheme]:
    """The API key scheme of the OpenAPI document (its model is imported on first use, not at cold start)."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

    return {"apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header})}


def openapi_json() -> str:
    """The OpenAPI document (also what Swagger UI at ``/docs`` shows)."""
    return app.get_openapi_json_schema(
        title=TITLE,
        version=API_VERSION,
        description="Graphs of agents and tools, compiled to AWS Step Functions and run serverlessly.",
        security_schemes=security_schemes(),
        security=SECURITY,
    )


@app.get("/openapi.json", include_in_schema=False)
def _openapi() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())
