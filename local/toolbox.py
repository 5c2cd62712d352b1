"""Run a registered tool's Lambda function (its zip, as stored by moto) in a sandboxed child process.

The child gets a clean environment (no API key, no AWS credentials), its own process group, a fresh
scratch directory as cwd, HOME and TMPDIR, and limits set with ``setrlimit`` before it starts: CPU time,
address space, file size, open files, no core dumps. Run as root (CI, containers) it also drops to the
``nobody`` user, so it cannot write outside its scratch directory and the world-writable ones; otherwise
it keeps the caller's user and write access is not enforced (docs/local-vs-aws.md). The wall time is
the function's ``Timeout``: past it the process group is killed and the invocation answers
``Sandbox.Timedout``, as Lambda does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

RUNNER = r"""
import json, os, sys, time, traceback
code_dir, timeout = sys.argv[1], float(sys.argv[2])
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # the tool's prints go to the log (stderr), never into the answer
sys.path.insert(0, code_dir)
deadline = time.monotonic() + timeout
class Context:
    def get_remaining_time_in_millis(self):
        return max(0, int((deadline - time.monotonic()) * 1000))
try:
    event = json.loads(sys.stdin.read() or "null")
    import stepgraph_bootstrap
    answer = {"result": stepgraph_bootstrap.handler(event, Context())}
except BaseException as exc:
    answer = {"errorType": type(exc).__name__, "errorMessage": str(exc),
              "stackTrace": traceback.format_exception(exc)[1:]}
out.write(json.dumps(answer))
out.flush()
"""

SANDBOX_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
FILE_SIZE_LIMIT = 64 * 1024 * 1024
OPEN_FILES_LIMIT = 64
INTERPRETER_BYTES = 512 * 1024 * 1024
"""Address space allowed on top of the tool's memory: the interpreter and its libraries (the bootstrap's own,
tighter limit makes the tool's allocation fail first; this one is the backstop)."""


@dataclass(frozen=True)
class Outcome:
    """What the sandboxed invocation answered: the result, or Lambda's error fields."""

    result: Any = None
    error_type: str | None = None
    error_message: str = ""
    stack: tuple[str, ...] = ()

    def payload(self) -> bytes:
        if self.error_type is None:
            return json.dumps(self.result).encode()
        return json.dumps(
            {"errorType": self.error_type, "errorMessage": self.error_message, "stackTrace": list(self.stack)}
        ).encode()


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def _limits(cpu_seconds: int, memory_mb: int, user: tuple[int, int] | None) -> Any:
    import resource

    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        address = memory_mb * 1024 * 1024 + INTERPRETER_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (address, address))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if user is not None:
            _drop_privileges(*user)

    return apply


def _unprivileged_user() -> tuple[int, int] | None:
    """``nobody``'s uid/gid when we are root (so the child can drop to it), else None."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _world_executable(path: str) -> bool:
    """True when any user may run ``path``: the file and every directory above it are executable by others."""
    real = os.path.realpath(path)
    try:
        if not os.stat(real).st_mode & 0o001:
            return False
        parent = os.path.dirname(real)
        while parent and parent != "/":
            if not os.stat(parent).st_mode & 0o001:
                return False
            parent = os.path.dirname(parent)
    except OSError:
        return False
    return True


def _interpreter(user: tuple[int, int] | None) -> tuple[str, tuple[int, int] | None]:
    """The Python to run the tool with, and the user to drop to: ``nobody`` only with an interpreter it can run
    (the bootstrap needs the standard library alone, like the bare Lambda runtime)."""
    if user is None:
        return sys.executable, None
    for candidate in (
        sys.executable,
        getattr(sys, "_base_executable", ""),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ):
        if candidate and _world_executable(candidate):
            return os.path.realpath(candidate), user
    return sys.executable, None


def run_zip(code: bytes, event_body: bytes, *, timeout: float, memory_mb: int) -> Outcome:
    """Unpack the function's zip and run its ``stepgraph_bootstrap.handler`` on ``event_body`` in a sandbox."""
    root = tempfile.mkdtemp(prefix="stepgraph-tool-")
    python, user = _interpreter(_unprivileged_user())
    try:
        code_dir, scratch = os.path.join(root, "code"), os.path.join(root, "scratch")
        os.mkdir(code_dir)
        os.mkdir(scratch)
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            archive.extractall(code_dir)
        os.chmod(root, 0o755)
        for dirpath, _, files in os.walk(code_dir):
            os.chmod(dirpath, 0o755)
            for name in files:
                os.chmod(os.path.join(dirpath, name), 0o644)
        if user is not None:
            os.chown(scratch, *user)
        env = {**SANDBOX_ENV, "HOME": scratch, "TMPDIR": scratch}
        try:
            proc = subprocess.Popen(
                [python, "-I", "-c", RUNNER, code_dir, str(timeout)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=scratch,
                env=env,
                preexec_fn=_limits(max(1, int(timeout + 1)), memory_mb, user),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return Outcome(error_type="Runtime.ExitError", error_message=f"the sandbox could not start: {exc}")
        try:
            out, err = proc.communicate(event_body, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            request = uuid.uuid4()
            return Outcome(
                error_type="Sandbox.Timedout",
                error_message=f"RequestId: {request} Error: Task timed out after {timeout:.2f} seconds",
            )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # nothing the tool started outlives the invocation
        try:
            answer = json.loads(out) if out else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            return Outcome(
                error_type="Runtime.ExitError", error_message=f"Runtime exited with error: {how} {tail[0]}".strip()
            )
        if "errorType" in answer:
            return Outcome(
                error_type=str(answer["errorType"]),
                error_message=str(answer.get("errorMessage", "")),
                stack=tuple(answer.get("stackTrace") or ()),
            )
        return Outcome(result=answer.get("result"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
