"""The API's resolver: one ``APIGatewayRestResolver`` with validation, the routers, auth and the docs.

Checks that must come before request validation (the API key and the body size) run in
``StepgraphResolver.resolve``; everything else is a route. Errors become responses in ``errors.py`` only.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from functions.api import errors
from functions.api.errors import UnsupportedMediaTypeError
from functions.api.routes import graphs, health, runs, tools
from functions.errors import BadRequestError, PayloadTooLargeError, UnauthorizedError
from functions.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme

MAX_BODY_BYTES = 256 * 1024
PUBLIC_PATHS = frozenset({"/health", "/docs", "/openapi.json"})
TITLE = "stepgraph"
API_VERSION = "1.0.0"


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for source in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for key, value in source.items():
            if key.lower() == name:
                if isinstance(value, list):
                    return str(value[0]) if value else None
                return None if value is None else str(value)
    return None


def preflight(event: Mapping[str, Any]) -> Exception | None:
    """The error for a request refused before routing: wrong API key (when configured), oversize body."""
    if not isinstance(event, Mapping):
        return BadRequestError("not an API Gateway proxy event")
    path = str(event.get("path") or "/")
    expected = get_settings().api_key
    if expected and path not in PUBLIC_PATHS:
        given = _header(event, "x-api-key") or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return UnauthorizedError("missing or wrong API key (header x-api-key)")
    body = event.get("body")
    if body:
        content_type = (_header(event, "content-type") or "application/json").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            return UnsupportedMediaTypeError(
                f"the request body must be JSON (Content-Type: application/json), not {content_type!r}")
    if isinstance(body, str):
        size = len(body.encode()) if not event.get("isBase64Encoded") else len(body) * 3 // 4
        if size > MAX_BODY_BYTES:
            return PayloadTooLargeError(f"the request body is {size} bytes, over the limit of {MAX_BODY_BYTES} bytes")
    return None


class StepgraphResolver(APIGatewayRestResolver):
    """The Powertools REST resolver with the pre-routing checks of ``preflight``."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        refused = preflight(event)
        if refused is not None:
            return errors.proxy_response(refused)
        return super().resolve(event, context)


app = StepgraphResolver(enable_validation=True)
errors.register(app)
for module in (health, tools, graphs, runs):
    app.include_router(module.router)

_SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header}),
}


def openapi_json() -> str:
    """The OpenAPI document (also what Swagger UI at ``/docs`` shows)."""
    return app.get_openapi_json_schema(
        title=TITLE, version=API_VERSION,
        description="Graphs of agents and tools, compiled to AWS Step Functions and run serverlessly.",
        security_schemes=_SECURITY_SCHEMES, security=[{"apiKey": []}],
    )


@app.get("/openapi.json", include_in_schema=False)
def _openapi() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())


app.enable_swagger(path="/docs", title=TITLE, version=API_VERSION, security_schemes=_SECURITY_SCHEMES,
                   security=[{"apiKey": []}])
