"""The AWS-side path of a registered tool: its function's zip and bootstrap handler, run as Lambda's Python
runtime would (a process whose environment holds the runtime's credentials), with no local sandbox around it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING, Any

from functions.api.tools_service import package
from functions.tools_runtime.bootstrap import MAX_ERROR_CHARS

if TYPE_CHECKING:
    from pathlib import Path

LAMBDA_LIKE_ENV = {
    "PATH": "/usr/bin:/bin",
    "AWS_ACCESS_KEY_ID": "ASIAFAKEKEYFORTESTS",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-for-tests",
    "AWS_SESSION_TOKEN": "fake-session-token",
    "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
    "STEPGRAPH_API_KEY": "not-for-tools",
}
INVOKE = r"""
import json, sys, time, traceback
sys.path.insert(0, sys.argv[1])
import stepgraph_bootstrap
deadline = time.monotonic() + float(sys.argv[2])
class Context:
    def get_remaining_time_in_millis(self):
        return int((deadline - time.monotonic()) * 1000)
try:
    print(json.dumps({"result": stepgraph_bootstrap.handler(json.loads(sys.argv[3]), Context())}))
except Exception as exc:
    print(json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}))
"""


def invoke(tmp_path: Path, source: str, params: Any = None, *, timeout: int = 5, memory_mb: int = 128) -> Any:
    """Unpack the zip the API would upload and call its handler in a fresh interpreter, as Lambda does."""
    checked = {
        "name": "acme.t",
        "params_schema": {"type": "object"},
        "timeout_seconds": timeout,
        "source": source,
        "description": "",
    }
    with zipfile.ZipFile(io.BytesIO(package(checked, memory_mb))) as archive:
        archive.extractall(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", INVOKE, str(tmp_path), str(timeout + 5), json.dumps(params or {})],
        capture_output=True,
        text=True,
        env=LAMBDA_LIKE_ENV,
        timeout=timeout + 30,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_tool_reading_the_environment_sees_no_secret(tmp_path: Path) -> None:
    # GIVEN a runtime environment holding credentials and our key, WHEN the tool returns what it sees
    answer = invoke(tmp_path, "import os\n\ndef run(params):\n    return dict(os.environ)\n")
    seen = answer["result"]
    # THEN none of it is there
    assert not [k for k in seen if k.startswith(("AWS_", "STEPGRAPH_"))], seen
    assert "fake-secret-for-tests" not in json.dumps(seen)


def test_an_endless_loop_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    answer = invoke(tmp_path, "def run(params):\n    while True:\n        pass\n", timeout=1)
    assert answer["errorType"] == "ToolTimeout"
    assert "timeout of 1 s" in answer["errorMessage"]


def test_allocating_past_the_memory_limit_fails_with_a_clear_code(tmp_path: Path) -> None:
    source = "def run(params):\n    hoard = []\n    while True:\n        hoard.append(bytearray(16 * 1024 * 1024))\n"
    answer = invoke(tmp_path, source, memory_mb=64)
    assert answer["errorType"] == "MemoryLimitExceeded"
    assert "64 MiB" in answer["errorMessage"]


def test_a_missing_import_fails_with_the_import_error(tmp_path: Path) -> None:
    answer = invoke(tmp_path, "import no_such_module_for_stepgraph\n\ndef run(params):\n    return 1\n")
    assert answer["errorType"] == "ModuleNotFoundError"
    assert "no_such_module_for_stepgraph" in answer["errorMessage"]


def test_params_that_break_the_schema_fail_before_the_tool_runs(tmp_path: Path) -> None:
    checked_source = "def run(params):\n    return params['n'] * 2\n"
    ok = invoke(tmp_path / "ok", checked_source, {"n": 21})
    assert ok == {"result": 42}
    assert invoke(tmp_path / "bad", checked_source, [1])["errorType"] == "InvalidParams"


def test_an_exception_keeps_its_class_name(tmp_path: Path) -> None:
    answer = invoke(tmp_path, "class Nope(Exception):\n    pass\n\n\ndef run(params):\n    raise Nope('no')\n")
    assert answer == {"errorType": "Nope", "errorMessage": "no"}


def test_a_long_error_message_is_cut_and_keeps_its_class_name(tmp_path: Path) -> None:
    # A tool that puts a whole response body in its exception: the failure must stay small enough to be caught
    answer = invoke(tmp_path, "def run(params):\n    raise ValueError('x' * 300_000)\n")
    assert answer["errorType"] == "ValueError"
    assert answer["errorMessage"] == "x" * MAX_ERROR_CHARS + "... (cut: 300000 characters in all)"
