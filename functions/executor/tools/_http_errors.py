"""The error codes of ``http.get`` besides ``BlockedAddress`` and ``UnsupportedScheme`` (no httpx import here)."""

from __future__ import annotations

from functions.errors import ToolError


class InvalidUrl(ToolError):
    """The URL cannot be requested (no host, unparsable)."""

    code = "InvalidUrl"


class HostNotFound(ToolError):
    """The host name does not resolve."""

    code = "HostNotFound"


class HttpTimeout(ToolError):
    """The request (name resolution, connection, redirects and body) took longer than its time limit."""

    code = "HttpTimeout"


class HttpConnectionError(ToolError):
    """The connection failed: refused, reset, or TLS verification failed."""

    code = "HttpConnectionError"


class ResponseTooLarge(ToolError):
    """The body is over ``max_bytes`` (counted after decompression)."""

    code = "ResponseTooLarge"


class TooManyRedirects(ToolError):
    """More redirects than ``http.get`` follows."""

    code = "TooManyRedirects"


class BadRedirect(ToolError):
    """A redirect status without a usable ``Location`` header."""

    code = "BadRedirect"


class ResponseTooDeep(ToolError):
    """The JSON body nests deeper than ``http.get`` parses (``MAX_JSON_DEPTH``)."""

    code = "ResponseTooDeep"
