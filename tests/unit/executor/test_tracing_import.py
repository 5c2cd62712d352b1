"""The X-Ray SDK is loaded only when tracing is on: with ``Tracing=false`` (POWERTOOLS_TRACE_DISABLED), no
function's cold start imports any of it, and the executor's Tracer records nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_PROBE = (
    "import json, sys; import functions.executor.handler as h; "
    "print(json.dumps({'xray': sorted(m for m in sys.modules if m.startswith('aws_xray_sdk.core')), "
    "'provider': type(h.tracer.provider).__name__}))"
)


def cold_import(**env: str) -> dict[str, object]:
    lambda_env = {"LAMBDA_TASK_ROOT": str(ROOT), "AWS_LAMBDA_FUNCTION_NAME": "stepgraph-executor", **env}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_TRACE", "AWS_SAM_LOCAL"))}
    command = [sys.executable, "-c", _PROBE]
    done = subprocess.run(command, env={**clean, **lambda_env}, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
def test_with_tracing_off_the_executor_loads_no_xray_sdk() -> None:
    # WHEN the executor handler is imported in Lambda with tracing disabled
    untraced = cold_import(POWERTOOLS_TRACE_DISABLED="true")
    # THEN nothing of the X-Ray SDK's recorder is loaded, and spans go nowhere
    assert untraced == {"xray": [], "provider": "NoTracing"}


@pytest.mark.slow
def test_with_tracing_on_the_executor_traces_through_xray() -> None:
    # WHEN it is imported with tracing on (the template's default)
    traced = cold_import(POWERTOOLS_TRACE_DISABLED="false")
    # THEN its Tracer records through the X-Ray SDK
    assert "aws_xray_sdk.core" in traced["xray"]
    assert traced["provider"] != "NoTracing"


HANDLERS = [
    "functions.api.handler",
    "functions.events.handler",
    "functions.schedules.handler",
    "functions.live.stream_handler",
    "functions.live.ws",
]


@pytest.mark.slow
@pytest.mark.parametrize("module", HANDLERS)
def test_with_tracing_off_no_function_loads_the_xray_sdk(module: str) -> None:
    # WHEN each of the other functions' handlers is imported in Lambda with tracing disabled
    probe = f"import json, sys; import {module}; print(json.dumps(sorted(m for m in sys.modules if 'xray' in m)))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_TRACE", "AWS_SAM_LOCAL"))}
    env.update(LAMBDA_TASK_ROOT=str(ROOT), AWS_LAMBDA_FUNCTION_NAME="stepgraph-fn", POWERTOOLS_TRACE_DISABLED="true")
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # THEN not one module of the X-Ray SDK (nor Powertools' X-Ray provider) is loaded
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
