"""The API's resolver: one ``APIGatewayRestResolver`` with validation, the routers, auth and the docs.

Checks that must come before request validation (CORS preflight, the API key and the body size) run in
``StepgraphResolver.resolve``; everything else is a route. Errors become responses in ``errors.py`` only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from functions.api import errors
from functions.api.cors import header, preflight_response, with_cors
from functions.api.errors import UnsupportedMediaTypeError
from functions.api.routes import console, graphs, health, runs, tools
from functions.errors import BadRequestError, PayloadTooLargeError, UnauthorizedError
from functions.settings import get_settings
from statemachine import jsonlimits
from statemachine.errors import JsonInputError, LimitError

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme

MAX_BODY_BYTES = 256 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DOCS_PATH = "/docs"
PUBLIC_PATHS = frozenset({"/health", DOCS_PATH, "/openapi.json", "/console"})
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]
TITLE = "stepgraph"
API_VERSION = "1.0.0"


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


class StepgraphResolver(APIGatewayRestResolver):
    """The Powertools REST resolver with the pre-routing checks of ``preflight`` and CORS (``cors.py``)."""

    _docs_enabled = False

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        origins = get_settings().cors_origins
        if isinstance(event, Mapping) and str(event.get("httpMethod") or "").upper() == "OPTIONS":
            return preflight_response(event, origins)
        refused, event = preflight(event)
        if refused is None and event.get("path") == DOCS_PATH and not self._docs_enabled:
            self.enable_docs()
        response = errors.proxy_response(refused) if refused is not None else super().resolve(event, context)
        return with_cors(response, event, origins)

    def enable_docs(self) -> None:
        """Swagger UI at ``/docs``, registered on its first request: it builds Powertools' OpenAPI models,
        which would otherwise cost every cold start (a fifth of the API's import) for a page rarely read."""
        self.enable_swagger(
            path=DOCS_PATH, title=TITLE, version=API_VERSION, security_schemes=security_schemes(), security=SECURITY
        )
        self._docs_enabled = True


app = StepgraphResolver(enable_validation=True)
errors.register(app)
for module in (health, tools, graphs, runs, console):
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
