"""The CLI's exit codes and its errors: one the user can fix locally, one the API answered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_API, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class StepgraphCliError(Exception):
    """Base of the CLI's errors: ``main`` prints them and exits with a code scripts can rely on."""


class CliError(StepgraphCliError):
    """A problem the user can fix locally (a missing file, bad JSON in ``--input``): exit code 2 by default."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Reported(StepgraphCliError):
    """An error already shown to the user (such as the API's refusal placed in the spec file): only exit with
    ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ApiError(StepgraphCliError):
    """The API answered with an error body ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, status: int, code: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            details = error.get("details")
            return cls(
                response.status_code,
                str(error.get("code") or response.reason_phrase),
                str(error.get("message") or ""),
                details if isinstance(details, list) else ([details] if details else []),
            )
        text = response.text.strip()[:500] or response.reason_phrase
        return cls(response.status_code, response.reason_phrase or "HTTPError", text)
