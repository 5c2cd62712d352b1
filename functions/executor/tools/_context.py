"""What a tool knows about the attempt it runs in: apart from ``base`` so the executor's cold start, which builds
one per tool call, does not load pydantic (``base`` and the tools do, when a tool is first asked for)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from functions.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable


def _no_log(message: str) -> None:
    """Default log sink: tools may always call ``ctx.log``; outside the executor lines go nowhere."""


@dataclass
class ToolContext:
    """What a tool knows about the attempt it runs in.

    ``attempt`` is 1-based: the Step Functions retry count (``$$.State.RetryCount``) plus one.
    ``log(message)`` records a line that the executor turns into a ``LOG`` event of the run.
    ``deadline`` (``time.monotonic()``) is when the node's timeout ends: a tool that waits (``http.get``,
    ``util.sleep``) stops waiting by then; see :meth:`remaining`.
    """

    run_id: str = ""
    node: str = ""
    iteration: int = 0
    attempt: int = 1
    log: Callable[[str], None] = _no_log
    settings: Settings = field(default_factory=get_settings)
    deadline: float | None = None

    def remaining(self, default: float) -> float:
        """Seconds left before the deadline (at least 0), or ``default`` when there is none."""
        if self.deadline is None:
            return default
        return max(0.0, min(default, self.deadline - time.monotonic()))
