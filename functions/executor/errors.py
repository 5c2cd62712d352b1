"""The exception the executor raises out of the handler: its class name is the node's error code.

Lambda reports ``errorType`` as the raised exception's class name, and Step Functions ``Retry``/``Catch``
match on that name. So a failure with code ``UpstreamDown`` is raised as an instance of a class named
``UpstreamDown`` (made once per code, a subclass of :class:`NodeFailed`).
"""

from __future__ import annotations

import threading
from typing import ClassVar

from functions.errors import StepgraphError

_lock = threading.Lock()


class NodeFailed(StepgraphError):
    """A node attempt failed; ``code`` (also the class name of the raised subclass) is its error type."""

    code: ClassVar[str] = "NodeFailed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_types: dict[str, type[NodeFailed]] = {}


def error_type(code: str) -> type[NodeFailed]:
    """The exception class named ``code`` (cached, so ``except`` and identity checks stay stable)."""
    with _lock:
        cls = _types.get(code)
        if cls is None:
            cls = type(code, (NodeFailed,), {"code": code, "__module__": __name__, "__qualname__": code})
            _types[code] = cls
        return cls


def raised_name(code: str) -> str:
    """The Lambda error type for a recorded error code: ``States.*`` names are Step Functions' own, and a
    function raising one fails the execution with ``States.Runtime``, so ``States.Timeout`` is raised as
    ``stepgraph.Timeout``."""
    return "stepgraph." + code[len("States.") :] if code.startswith("States.") else code


def node_failure(code: str, message: str) -> NodeFailed:
    """An exception whose type name is ``code`` (``States.X`` becomes ``stepgraph.X``) and whose message is
    ``message``."""
    return error_type(raised_name(code))(message)
