"""The one place where exceptions become HTTP statuses and the error body.

Body: ``{"error": {"code", "message", "details": [...]}}``. Bad input is always 4xx; only our own
bugs or an AWS outage answer 5xx, with the same body and no internals.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import (
    BadRequestError,
    ConflictError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaError,
    ScheduleError,
    StoreError,
    UnauthorizedError,
    UnprocessableError,
    UpstreamError,
)
from statemachine.errors import JsonInputError, LimitError, SpecError, StepgraphError, detail_at

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

logger = Logger(service="stepgraph-api")


class UnsupportedMediaTypeError(BadRequestError):
    """A request body that is not JSON (415)."""


# Checked in order: the first class an exception is an instance of decides (subclasses first).
STATUS: list[tuple[type[BaseException], int, str]] = [
    (UnsupportedMediaTypeError, 415, "unsupported_media_type"),
    (UnauthorizedError, 401, "unauthorized"),
    (IdempotencyInProgressError, 409, "idempotency_in_progress"),
    (IdempotencyKeyReusedError, 422, "idempotency_key_reused"),
    (NotFoundError, 404, "not_found"),
    (QuotaError, 409, "quota_exceeded"),
    (ConflictError, 409, "conflict"),
    (PayloadTooLargeError, 413, "payload_too_large"),
    (BadRequestError, 400, "bad_request"),
    (UnprocessableError, 422, "invalid_request"),
    (JsonInputError, 400, "malformed_json"),
    (LimitError, 422, "limit_exceeded"),
    (ScheduleError, 422, "invalid_schedule"),
    (SpecError, 422, "invalid_spec"),
]


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def status_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and error code for one of our exceptions (500 for anything unknown)."""
    if isinstance(exc, LimitError):
        return exc.status, "limit_exceeded"
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc) or exc.__class__.__name__


def response_for(exc: BaseException) -> Response:
    """The API response for ``exc``; what is not ours is logged and answered 500 without internals."""
    if isinstance(exc, StepgraphError) and not isinstance(exc, UpstreamError):
        status, code = status_of(exc)
        if status < 500:
            details = list(getattr(exc, "details", None) or [])
            return _json(status, error_body(code, _message(exc), details))
    if isinstance(exc, UpstreamError | StoreError | ClientError | BotoCoreError):
        logger.exception("AWS call failed")
        return _json(502, error_body("upstream_error", "an AWS service call failed; try again"))
    logger.exception("unhandled error")
    return _json(500, error_body("internal_error", "internal error; it has been logged"))


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def proxy_response(exc: BaseException) -> dict[str, Any]:
    """``response_for`` as a raw API Gateway proxy result, for checks made before the resolver runs."""
    response = response_for(exc)
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(response.body),
        "isBase64Encoded": False,
    }


def validation_details(exc: RequestValidationError, body: Any) -> list[dict[str, Any]]:
    """The resolver's validation errors in our detail shape, naming the node or edge they are about."""
    details: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        in_body = not loc or loc[0] == "body"
        detail = detail_at(loc[1:] if in_body else loc, str(err.get("msg", err.get("type", "invalid"))), body)
        details.append({**detail, "type": str(err.get("type", ""))})
    return details


def register(app: APIGatewayRestResolver) -> None:
    """Install the exception handlers on the resolver."""

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            position = next((e.get("loc") for e in errors if e.get("type") == "json_invalid"), None)
            return _json(
                400,
                error_body(
                    "malformed_json",
                    "the request body is not valid JSON",
                    [{"loc": "body", "message": "JSON decode error", "position": position[-1] if position else None}],
                ),
            )
        try:
            body = app.current_event.json_body
        except (ValueError, TypeError):
            body = None
        details = validation_details(exc, body)
        return _json(422, error_body("invalid_request", "the request does not match the API's schema", details))

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response:
        return response_for(UnsupportedMediaTypeError("the request body must be JSON (Content-Type: application/json)"))

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        status = int(exc.status_code)
        known = status in HTTPStatus._value2member_map_
        code = HTTPStatus(status).phrase.lower().replace(" ", "_") if known else "error"
        return _json(status, error_body(code, str(exc.msg)))

    @app.exception_handler(Exception)
    def _any(exc: Exception) -> Response:
        return response_for(exc)

    @app.not_found
    def _no_route(exc: Exception) -> Response:
        event = app.current_event
        return _json(404, error_body("not_found", f"no route {event.http_method} {event.path}"))
