"""``util.fail``: fails its first N attempts with a named error, then succeeds (to try Retry and Catch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, RootModel, field_validator

from functions.executor.tools.base import ERROR_CODE_PATTERN, StrictParams, ToolError, is_error_code

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "util.fail"
DESCRIPTION = "Fail the first `failures` attempts with error `error`, then succeed with `output`."


class Params(StrictParams):
    failures: int = Field(default=1, ge=0, description="Attempts that fail (attempt = Step Functions retry count + 1).")
    error: str = Field(
        default="InjectedFailure",
        pattern=ERROR_CODE_PATTERN,
        description="The error name Step Functions sees, for Retry/Catch ErrorEquals (not States.*).",
    )
    message: str = Field(default="injected failure", description="The error message.")
    output: dict[str, Any] | None = Field(
        default=None, description='The output once it succeeds; default {"attempt": <the attempt that succeeded>}.'
    )

    @field_validator("error")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if not is_error_code(value):
            raise ValueError("error names starting with 'States.' are reserved by Step Functions")
        return value


class Output(RootModel[dict[str, Any]]):
    """``output`` as given, or ``{"attempt": n}``."""


def run(params: Params, ctx: ToolContext) -> Output:
    if ctx.attempt <= params.failures:
        ctx.log(f"failing attempt {ctx.attempt} of {params.failures} with {params.error}")
        raise ToolError(f"{params.message} (attempt {ctx.attempt} of {params.failures} failing)", code=params.error)
    return Output(params.output if params.output is not None else {"attempt": ctx.attempt})
