"""Errors raised by the Lambda functions; the API maps them to HTTP status in one place."""

from __future__ import annotations

from typing import Any

from statemachine.errors import LimitError, SpecError, StepgraphError

__all__ = [
    "BadRequestError",
    "BlockedAddress",
    "ConflictError",
    "IdempotencyInProgressError",
    "IdempotencyKeyReusedError",
    "LimitError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ScheduleError",
    "SpecError",
    "StepgraphError",
    "StoreError",
    "ToolError",
    "UnauthorizedError",
    "UnprocessableError",
    "UnsupportedScheme",
]


class NotFoundError(StepgraphError):
    """An id names nothing (404)."""


class ConflictError(StepgraphError):
    """The request conflicts with the current state, e.g. cancelling a finished run (409)."""


class QuotaError(ConflictError):
    """An AWS quota of the account that the request needs is used up (409, ``quota_exceeded``); nothing was
    created. Freeing some (e.g. deleting graphs) or raising the quota with AWS lets it through."""


class BadRequestError(StepgraphError):
    """The request is malformed, e.g. not JSON (400)."""


class UnprocessableError(StepgraphError):
    """Well-formed JSON that the request cannot take, e.g. an answer that breaks its schema (422);
    ``details`` say where."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class IdempotencyKeyReusedError(UnprocessableError):
    """An Idempotency-Key sent again with another request body (422)."""


class IdempotencyInProgressError(ConflictError):
    """The first request with this Idempotency-Key is still being processed (409)."""


class UnauthorizedError(StepgraphError):
    """The API key is missing or wrong (401)."""


class PayloadTooLargeError(StepgraphError):
    """The body is over its limit (413)."""


class ScheduleError(SpecError):
    """A schedule's expression or time zone is not one EventBridge Scheduler takes (422); ``details`` name the
    field and the column of the problem."""


class UpstreamError(StepgraphError):
    """An AWS call failed for a reason the client cannot fix (502)."""


class StoreError(StepgraphError):
    """DynamoDB failed in a way the caller cannot fix."""


class ToolError(StepgraphError):
    """A tool failed; ``code`` is the error name Step Functions sees (``Retry``/``Catch`` match on it)."""

    code = "ToolError"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class BlockedAddress(ToolError):
    """``http.get`` refused an address that is not global (SSRF guard)."""

    code = "BlockedAddress"


class UnsupportedScheme(ToolError):
    """``http.get`` refused a URL scheme other than http or https."""

    code = "UnsupportedScheme"
