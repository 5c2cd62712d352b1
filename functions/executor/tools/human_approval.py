"""``human.approval``: wait for a person to approve or reject; edges route on ``<node>.approved``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from functions.executor.tools._human import MAX_COMMENT_CHARS, MAX_PROMPT_CHARS, not_run
from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext


NAME = "human.approval"
DESCRIPTION = "Wait for a person to approve or reject (POST /runs/{id}/nodes/{node}/respond); output approved, comment."


class Params(StrictParams):
    prompt: str = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What the person is asked; references such as {{ draft.text }} are resolved.",
    )


class Output(BaseModel):
    approved: bool = Field(description="The person's decision.")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS, description="What they added, if any.")
    responded_at: str = Field(description="When they answered (ISO 8601 UTC).")


def run(params: Params, ctx: ToolContext) -> Output:
    raise not_run(NAME)
