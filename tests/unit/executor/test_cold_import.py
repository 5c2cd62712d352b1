"""The executor's cold start loads no pydantic: its requests are parsed without it, and it comes only with a tool
(the tools' params and outputs are pydantic models), so bookkeeping steps never pay for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_PROBE = """
import json, sys
from pathlib import Path
import functions.executor.handler
from statemachine.protocol import ExecutorRequest
for path in sorted(Path("events").glob("executor-*.json")):
    request = ExecutorRequest.from_event(json.loads(path.read_text()))
    request.context, request.failure
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core", "annotated_types"))
tools = sorted(m for m in sys.modules if m.startswith("functions.executor.tools."))
print(json.dumps({"pydantic": loaded, "tools": tools}))
"""


@pytest.mark.slow
def test_the_executor_cold_start_loads_no_pydantic() -> None:
    # WHEN the executor handler is imported in a fresh interpreter, as Lambda does (tracing off), and it parses
    # every sample request (each mode's) with their node contexts
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_TRACE", "AWS_SAM_LOCAL"))}
    env.update(
        LAMBDA_TASK_ROOT=str(ROOT), AWS_LAMBDA_FUNCTION_NAME="stepgraph-executor", POWERTOOLS_TRACE_DISABLED="true"
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    # THEN no module of pydantic is loaded, nor any tool module but the tool context
    assert loaded == {"pydantic": [], "tools": ["functions.executor.tools._context"]}
