"""Powertools Tracer that imports the X-Ray SDK only when tracing is on.

``Tracer()`` imports the X-Ray SDK's recorder (and wrapt) even when tracing is disabled, a sizeable part of
a cold start. When tracing is off (the template's ``Tracing`` parameter sets ``POWERTOOLS_TRACE_DISABLED``;
also outside Lambda and under SAM local, as Powertools decides) the Tracer gets a provider that does
nothing instead, so nothing of the SDK is loaded.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

if TYPE_CHECKING:
    import numbers
    import traceback
    from collections.abc import AsyncGenerator, Generator, Sequence


def tracing_enabled() -> bool:
    """Whether Powertools would trace here: not disabled by ``POWERTOOLS_TRACE_DISABLED``, in Lambda, not SAM local."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on")
    in_lambda = bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL")
    return in_lambda and not disabled and not os.environ.get("AWS_CHALICE_CLI_MODE")


def make_tracer(service: str, patch_modules: Sequence[str]) -> Tracer:
    """A Tracer patching ``patch_modules`` when tracing is on; one that records nothing, SDK unloaded, when off."""
    if tracing_enabled():
        return Tracer(service=service, patch_modules=patch_modules)
    return Tracer(service=service, disabled=True, auto_patch=False, provider=NoTracing())


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(
        self, exception: BaseException, stack: list[traceback.StackSummary], remote: bool = False
    ) -> None:
        return None


class NoTracing(BaseProvider):
    """A Tracer provider that records nothing (tracing off)."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> AsyncGenerator[BaseSegment, None]:
        yield _NoSegment()

    def put_annotation(self, key: str, value: str | numbers.Number | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Sequence[str]) -> None:
        return None

    def patch_all(self) -> None:
        return None
