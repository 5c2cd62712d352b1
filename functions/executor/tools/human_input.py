"""``human.input``: wait for a person's answer, checked against a JSON Schema; output ``<node>.input``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from functions.executor.tools._human import MAX_PROMPT_CHARS, check_schema, not_run
from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "human.input"
DESCRIPTION = (
    "Wait for a person's answer (POST /runs/{id}/nodes/{node}/respond), checked against `schema`; output input."
)


class Params(StrictParams):
    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What the person is asked; references such as {{ draft.text }} are resolved.",
    )
    schema_: dict[str, Any] = Field(
        default_factory=dict,
        alias="schema",
        description="A JSON Schema the answer's `input` must satisfy (422 otherwise); default: any JSON value.",
    )

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_schema(value)


class Output(BaseModel):
    input: Any = Field(description="The person's answer, as checked against `schema`.")
    responded_at: str = Field(description="When they answered (ISO 8601 UTC).")


def run(params: Params, ctx: ToolContext) -> Output:
    raise not_run(NAME)
