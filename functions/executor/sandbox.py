"""Where tools run so that a timeout stops them: CPU-bound tools in worker processes, the rest with a deadline.

A thread cannot be stopped, so a tool that runs past its node's timeout in a thread keeps burning CPU (and on
AWS keeps running into the next invocation of the sandbox). Tools marked ``ISOLATED`` (JMESPath, text and code
analysis, charts) run instead in a worker process (:mod:`functions.executor.worker`), started on first use
and reused; at the deadline the worker is killed. Other tools (``http.get``, ``util.*``) run in the calling
thread and read ``ctx.deadline`` for their own waits. Either way, once the deadline has passed the attempt is
a ``States.Timeout``, whatever the tool returned.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from functions.errors import ToolError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from functions.executor.tools.base import Tool, ToolContext

MAX_IDLE_WORKERS = 4
"""Workers kept for reuse; more may run at once (the local cloud runs invocations on threads)."""
MAX_IDLE_RSS = 256 * 1024 * 1024
"""A worker that grew past this (a large input) is stopped rather than kept: Python rarely returns memory."""
READ_CHUNK = 1 << 16


class ToolTimeout(Exception):
    """The tool was still running at its deadline (the executor records ``States.Timeout``)."""


class WorkerLost(ToolError):
    """The worker process died under the tool (killed by the system, out of memory)."""

    code = "ToolCrashed"


class Worker:
    """One worker process and the pipe protocol to it."""

    def __init__(self) -> None:
        import subprocess  # here, not at import: only isolated tools start workers (the executor's cold start)

        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "functions.executor.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin = self.process.stdin
        self.fd = self.process.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss(self) -> int:
        """Resident memory in bytes (Linux ``/proc``; 0 where it cannot be read)."""
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as stats:
                return int(stats.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def call(
        self, tool: str, params: Any, where: Mapping[str, Any], log: Callable[[str], None], deadline: float
    ) -> Any:
        """Run ``tool`` in this worker; :class:`ToolTimeout` (the worker is then killed) at ``deadline``."""
        request = {"tool": tool, "params": params, "ctx": dict(where)}
        try:
            self.stdin.write(json.dumps(request, separators=(",", ":")).encode() + b"\n")
            self.stdin.flush()
        except OSError as exc:
            self.kill()
            raise WorkerLost(f"{tool} crashed: its worker process is gone ({exc})") from None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    answer = json.loads(line)
                    if "log" in answer:
                        log(str(answer["log"]))
                        continue
                    return _outcome(tool, answer)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise ToolTimeout(tool)
                if not selector.select(remaining):
                    continue
                try:
                    chunk = os.read(self.fd, READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    code = self.process.wait()
                    raise WorkerLost(f"{tool} crashed: its worker process ended (exit status {code})")
                self.buffer += chunk

    def kill(self) -> None:
        """Stop the worker now (SIGKILL) and reap it."""
        with contextlib.suppress(OSError):
            self.process.kill()
        import subprocess

        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()


def _outcome(tool: str, answer: dict[str, Any]) -> Any:
    if "ok" in answer:
        return answer["ok"]
    if "error" in answer:
        error = answer["error"]
        raise ToolError(
            str(error.get("message", "")), code=str(error.get("code", "ToolError")), details=error.get("details")
        )
    raise WorkerLost(f"{tool} crashed: {answer.get('crash', 'no answer')}")


class WorkerPool:
    """Worker processes started on first use and reused; thread-safe."""

    def __init__(self, max_idle: int = MAX_IDLE_WORKERS) -> None:
        self.max_idle = max_idle
        self._idle: list[Worker] = []
        self._lock = threading.Lock()
        self.started = 0
        """Workers started so far (a figure for benches and tests)."""

    def _take(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
            self.started += 1
        return Worker()

    def _give(self, worker: Worker) -> None:
        with self._lock:
            if worker.alive() and len(self._idle) < self.max_idle and worker.rss() <= MAX_IDLE_RSS:
                self._idle.append(worker)
                return
        worker.kill()

    def run(self, tool: str, params: Any, where: Mapping[str, Any], log: Callable[[str], None], deadline: float) -> Any:
        """Run ``tool`` in a worker until ``deadline`` (:class:`ToolTimeout` after killing the worker)."""
        worker = self._take()
        try:
            result = worker.call(tool, params, where, log, deadline)
        except (ToolTimeout, WorkerLost):
            worker.kill()
            raise
        except BaseException:
            self._give(worker)
            raise
        self._give(worker)
        return result

    def shutdown(self) -> None:
        """Stop every idle worker (busy ones stop when their call ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def pool() -> WorkerPool:
    """This process's worker pool (made on first use; no process starts until a tool needs one)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = WorkerPool()
    return _pool


def run_tool(tool: Tool, params: Any, context: ToolContext, deadline: float) -> dict[str, Any]:
    """Run ``tool`` so that it stops at ``deadline`` (``time.monotonic()``); :class:`ToolTimeout` past it."""
    if tool.isolated:
        where = {"run_id": context.run_id, "node": context.node, "iteration": context.iteration}
        where["attempt"] = context.attempt
        output = pool().run(tool.name, params, where, context.log, deadline)
    else:
        context.deadline = deadline
        output = tool.invoke(params, context)
    if time.monotonic() >= deadline:
        raise ToolTimeout(tool.name)
    return dict(output)
