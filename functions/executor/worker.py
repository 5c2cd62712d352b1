"""A tool worker process: runs CPU-bound tools for the executor, one request at a time, until stdin closes.

Started by :mod:`functions.executor.sandbox` as ``python -m functions.executor.worker``. Each request is one
JSON line on stdin, ``{"tool", "params", "ctx": {"run_id", "node", "iteration", "attempt"}}``; the answer is
zero or more ``{"log": line}`` lines, then ``{"ok": output}``, ``{"error": {"code", "message", "details"}}`` (a
``ToolError``) or ``{"crash": "Type: message"}`` (anything else). The executor kills the process when a tool
passes its node's timeout, which is what stops the work (a thread cannot be stopped).
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any


def _send(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    out.flush()


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer requests from ``inp`` on ``out`` until ``inp`` ends."""
    from functions.errors import ToolError
    from functions.executor.tools import registry
    from functions.executor.tools.base import ToolContext

    for line in inp:
        if not line.strip():
            continue
        request = json.loads(line)
        where = request.get("ctx") or {}
        context = ToolContext(
            run_id=str(where.get("run_id", "")),
            node=str(where.get("node", "")),
            iteration=int(where.get("iteration", 0)),
            attempt=int(where.get("attempt", 1)),
            log=lambda message: _send(out, {"log": str(message)}),
        )
        try:
            output = registry.get(request["tool"]).invoke(request.get("params"), context)
        except ToolError as exc:
            details = exc.details if _is_json(exc.details) else None
            _send(out, {"error": {"code": exc.code, "message": exc.message or str(exc), "details": details}})
        except Exception as exc:  # reported as ToolCrashed by the executor
            _send(out, {"crash": f"{type(exc).__name__}: {exc}"})
        else:
            _send(out, {"ok": output})


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def main() -> None:
    # The protocol owns file descriptor 1; anything a tool prints goes to stderr (the function's log).
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, protocol)


if __name__ == "__main__":
    main()
