"""How a failure is named: the ``(code, message)`` a node's failure is recorded and raised with."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import StoreError, ToolError
from functions.executor.errors import NodeFailed
from functions.executor.sandbox import ToolTimeout
from statemachine import references
from statemachine.errors import DataError, StepgraphError
from statemachine.jsonlimits import MAX_ERROR_MESSAGE, valid_text


def describe_error(exc: BaseException, tool: str) -> tuple[str, str]:
    """The ``(code, message)`` a failure is recorded and raised with, as valid Unicode (a tool's exception may
    carry any text, a lone surrogate included)."""
    code, message = _described(exc, tool)
    return valid_text(code), valid_text(message, MAX_ERROR_MESSAGE)


def _described(exc: BaseException, tool: str) -> tuple[str, str]:
    if isinstance(exc, NodeFailed):
        return exc.code, exc.message
    if isinstance(exc, ToolTimeout):
        return "States.Timeout", str(exc)
    if isinstance(exc, ToolError):
        return exc.code, exc.message or str(exc)
    if isinstance(exc, DataError):
        return exc.code, exc.message
    if isinstance(exc, references.ReferenceSyntaxError):
        return "stepgraph.ReferenceError", exc.message
    if isinstance(exc, StoreError | ClientError | BotoCoreError):
        return "stepgraph.StoreError", f"the run's store failed: {exc}"
    if isinstance(exc, StepgraphError):
        code = getattr(exc, "code", None)
        return (code if isinstance(code, str) else type(exc).__name__), str(exc)
    return "ToolCrashed", f"{tool} crashed: {type(exc).__name__}: {exc}"
