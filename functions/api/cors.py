"""CORS for front ends served from other origins.

Allowed origins come from ``STEPGRAPH_CORS_ORIGINS`` (the template's ``CorsAllowedOrigins``), none by default:
then no response carries a CORS header and browsers keep other origins out. A preflight (``OPTIONS``) is
answered here, before the API key check, because browsers send no key with it; an origin that is not allowed
gets the same empty answer with no CORS header, so its request is never sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import CORSConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

ALLOWED_METHODS = "DELETE,GET,OPTIONS,POST,PUT"
EXTRA_HEADERS = ["Idempotency-Key"]
MAX_AGE_SECONDS = 600


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header, whatever its case, from the single- or multi-value map of a proxy event."""
    for source in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for key, value in source.items():
            if key.lower() == name:
                if isinstance(value, list):
                    return str(value[0]) if value else None
                return None if value is None else str(value)
    return None


def cors_headers(event: Mapping[str, Any], origins: tuple[str, ...]) -> dict[str, str]:
    """The CORS headers for this request's ``Origin``: none unless it is allowed (``*`` allows any)."""
    origin = header(event, "origin")
    if not origins or not origin or (origin not in origins and "*" not in origins):
        return {}
    config = CORSConfig(
        allow_origin=origins[0], extra_origins=list(origins[1:]), allow_headers=EXTRA_HEADERS, max_age=MAX_AGE_SECONDS
    )
    return {**config.to_dict(origin), "Vary": "Origin"}


def preflight_response(event: Mapping[str, Any], origins: tuple[str, ...]) -> dict[str, Any]:
    """The answer to ``OPTIONS``: 204, with the allowed methods and headers only for an allowed origin."""
    headers = cors_headers(event, origins)
    if headers:
        headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    return {"statusCode": 204, "headers": headers, "body": "", "isBase64Encoded": False}


def with_cors(response: dict[str, Any], event: Mapping[str, Any], origins: tuple[str, ...]) -> dict[str, Any]:
    """``response`` (a proxy result) with the CORS headers for ``event``'s origin added."""
    headers = cors_headers(event, origins)
    if not headers:
        return response
    if response.get("multiValueHeaders") is not None:
        response["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    else:
        response["headers"] = {**(response.get("headers") or {}), **headers}
    return response
