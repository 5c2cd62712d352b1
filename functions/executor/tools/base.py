"""What a tool is: its context, its descriptor and the errors shared by every tool.

A tool module declares ``NAME``, ``DESCRIPTION``, ``Params`` (pydantic model), ``Output`` (pydantic model)
and ``run(params, ctx)``; the registry turns it into a :class:`Tool`. See the package docstring.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from functions.errors import ToolError
from functions.executor.tools._context import ToolContext

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ERROR_CODE_PATTERN",
    "InvalidOutput",
    "InvalidParams",
    "OpenParams",
    "StrictParams",
    "Tool",
    "ToolContext",
    "ToolError",
]

# A Step Functions error name a tool may raise: ``Retry``/``Catch`` match it; ``States.`` is reserved by AWS
# (checked by ``is_error_code``: pydantic's regex engine has no look-ahead).
ERROR_CODE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,127}$"
_ERROR_CODE_RE = re.compile(ERROR_CODE_PATTERN)


class InvalidParams(ToolError):
    """The resolved params do not match the tool's ``Params`` model."""

    code = "InvalidParams"


class InvalidOutput(ToolError):
    """A tool returned something its ``Output`` model rejects (a bug in the tool)."""

    code = "InvalidOutput"


class StrictParams(BaseModel):
    """Params of a typed tool: unknown fields are errors, so a typo in a graph spec fails validation."""

    model_config = ConfigDict(extra="forbid")


class OpenParams(BaseModel):
    """Any JSON object: the params of tools that pass their params on untouched (and of ``lambda:`` nodes)."""

    model_config = ConfigDict(extra="allow")


def is_error_code(code: str) -> bool:
    """Whether ``code`` can be a Step Functions error name raised by a tool."""
    return bool(_ERROR_CODE_RE.fullmatch(code)) and not code.startswith("States.")


def _errors_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Tool:
    """A registered tool: its name, one-line description, params and output models, and ``run``."""

    name: str
    description: str
    params_model: type[BaseModel]
    output_model: type[BaseModel]
    run: Callable[[Any, ToolContext], Any]
    module: str = ""
    isolated: bool = False
    """CPU-bound: the executor runs it in a worker process it can kill at the node's timeout."""

    def parse_params(self, params: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        """Validate raw (resolved) params; :class:`InvalidParams` names every bad field."""
        if isinstance(params, self.params_model):
            return params
        raw = params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
        try:
            return self.params_model.model_validate(raw)
        except ValidationError as exc:
            raise InvalidParams(
                f"{self.name}: invalid params: {_errors_text(exc)}",
                details=exc.errors(include_url=False, include_context=False, include_input=False),
            ) from None

    def invoke(self, params: Mapping[str, Any] | BaseModel | None, ctx: ToolContext | None = None) -> dict[str, Any]:
        """Validate params, run the tool, validate its output, and return it as a JSON-ready dict."""
        parsed = self.parse_params(params)
        result = self.run(parsed, ctx if ctx is not None else ToolContext())
        try:
            out = result if isinstance(result, self.output_model) else self.output_model.model_validate(result)
        except ValidationError as exc:
            raise InvalidOutput(f"{self.name}: invalid output: {_errors_text(exc)}") from None
        dumped = out.model_dump(mode="json", by_alias=True)
        if not isinstance(dumped, dict):
            raise InvalidOutput(f"{self.name}: output must be a JSON object, got {type(dumped).__name__}")
        return dumped

    def describe(self) -> dict[str, Any]:
        """``{"name", "description", "params_schema", "output_schema"}``, as ``GET /tools/{name}`` serves it."""
        return {
            "name": self.name,
            "description": self.description,
            "params_schema": self.params_model.model_json_schema(),
            "output_schema": self.output_model.model_json_schema(mode="serialization", by_alias=True),
        }
