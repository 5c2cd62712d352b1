"""``util.sleep``: waits, to try timeouts and to give graphs steps of known length."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from functions.executor.tools.base import StrictParams

if TYPE_CHECKING:
    from functions.executor.tools.base import ToolContext

NAME = "util.sleep"
DESCRIPTION = "Sleep the given number of seconds (0 to 900, fractions allowed), then return."

MAX_SECONDS = 900.0  # the longest a Lambda function may run


class Params(StrictParams):
    seconds: float = Field(ge=0, le=MAX_SECONDS, description="How long to sleep, in seconds.")


class Output(BaseModel):
    slept_seconds: float = Field(description="The seconds asked for (and slept).")


def run(params: Params, ctx: ToolContext) -> Output:
    ctx.log(f"sleeping {params.seconds:g}s")
    time.sleep(ctx.remaining(params.seconds))  # past the node's timeout the executor reports States.Timeout
    return Output(slept_seconds=params.seconds)
