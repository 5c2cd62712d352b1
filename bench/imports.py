"""Cold start of what ships: the handlers' import from the built artifact, on the Lambda runtime's Python.

The artifact is what ``sam build`` makes (the Makefile's ``build-ApiFunction`` target: both packages, the
runtime dependencies as wheels, bytecode compiled by Python 3.13), built for this machine's architecture so
its native wheels load here. Each figure is the median of fresh Python 3.13 interpreters importing
``functions.<name>.handler`` from it, in a Lambda-like environment where nothing can be written (as
``/var/task``): with the shipped bytecode and X-Ray tracing on (as deployed by default), tracing off, and with
the bytecode ignored (what a build without it costs every cold start). CPU time (``process_time``) is the
steadier figure on a busy machine; the heaviest packages come from ``-X importtime`` (self time of every
module, summed by top-level package; ``-X importtime`` adds its own overhead). Beside each handler, in the same
fresh-interpreter rounds, the libraries it loads are imported alone, in the order the handler loads them and
without a line of stepgraph: the floor no change to stepgraph's own modules can go below.

A cold start is the import and then its first request: what the import defers (a route's models, Powertools
Idempotency, the diagram renderer) is paid there. So the API's first ``GET /runs/{id}`` (of a finished run) and
``GET /graphs`` are timed too, in the same fresh interpreter right after the import, against a local cloud's AWS
endpoint (moto on loopback): ``import + first request`` is what a cold request costs in CPU.

Goals (issue 10): API under 300 ms, executor under 250 ms.

Run: ``python -m bench.imports [--runs N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from functions.names import state_machine_name

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = {
    "executor": "functions.executor.handler",
    "api": "functions.api.handler",
    "events": "functions.events.handler",
    "schedule": "functions.schedules.handler",
    "stream": "functions.live.stream_handler",
    "ws": "functions.live.ws",
}
GOALS_MS = {"api": 300.0, "executor": 250.0}
# The runtime's environment: /var/task is read-only, so no bytecode is ever written there.
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "stepgraph-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
    "POWERTOOLS_SERVICE_NAME": "stepgraph",
    "POWERTOOLS_METRICS_NAMESPACE": "stepgraph",
    "STEPGRAPH_TABLE": "stepgraph-bench",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# -S: no site-packages of the interpreter, only the artifact (as the runtime puts /var/task first).
_TIMER = (
    "import sys; sys.path.insert(0, {root!r}); import time as _t; _w, _c = _t.perf_counter(), _t.process_time(); "
    "import {module}; print((_t.perf_counter() - _w) * 1000, (_t.process_time() - _c) * 1000)"
)

# The library modules (from the artifact, not stepgraph's packages) a handler has loaded, in the order it loaded them.
_LIBRARIES = (
    "import sys, json; sys.path.insert(0, {root!r}); import {module}; "
    "print(json.dumps([n for n, m in list(sys.modules.items()) "
    "if (getattr(m, '__file__', None) or '').startswith({root!r} + '/') and n.split('.')[0] not in {ours!r}]))"
)
# Those modules imported alone, in that order: CPU and wall ms, as _TIMER prints them.
_LIBRARIES_TIMER = (
    "import sys, json; sys.path.insert(0, {root!r}); _names = json.loads(open({names!r}).read()); "
    "import importlib, time as _t; _w, _c = _t.perf_counter(), _t.process_time(); "
    "[importlib.import_module(_n) for _n in _names]; "
    "print((_t.perf_counter() - _w) * 1000, (_t.process_time() - _c) * 1000)"
)
OURS = ("functions", "statemachine")

# The first request after a cold import, in the same interpreter: a Lambda context as the runtime gives one.
_FIRST_REQUEST = (
    "import sys, json; sys.path.insert(0, {root!r}); import time as _t; _c = _t.process_time(); "
    "import {module} as _h; _i = _t.process_time(); "
    "_ctx = type('C', (), dict(function_name='stepgraph-bench', memory_limit_in_mb=1024, aws_request_id='r', "
    "invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:stepgraph-bench', "
    "get_remaining_time_in_millis=lambda self: 29000))(); "
    "_r = _h.lambda_handler(json.loads({event!r}), _ctx); _e = _t.process_time(); "
    "print((_i - _c) * 1000, (_e - _i) * 1000, {status})"
)
# The executor's first invocations: a tool node (``util.echo``: the tool and pydantic load with it) and a
# bookkeeping step (``record`` after a ``lambda:`` node: no tool).
EXECUTOR_SAMPLES = {"run util.echo": "executor-run", "record lambda:": "executor-record"}


class BenchSetupError(Exception):
    """The artifact or Python 3.13 is not available."""


@dataclass
class ImportFigure:
    """The import cost of one handler from the artifact."""

    name: str
    module: str
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    untraced_cpu_ms: list[float] = field(default_factory=list)
    no_bytecode_cpu_ms: list[float] = field(default_factory=list)
    libraries_cpu_ms: list[float] = field(default_factory=list)
    libraries: int = 0
    heaviest: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    @staticmethod
    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None


def lambda_python() -> str:
    """The Python 3.13 the build compiles bytecode with (the Makefile's LAMBDA_PYTHON_BIN)."""
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "lambda-python"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    python = done.stdout.strip()
    if done.returncode != 0 or not python or shutil.which(python) is None:
        raise BenchSetupError(f"no Python 3.13 (make lambda-python said {python or done.stderr.strip()!r})")
    return python


def local_platforms() -> str:
    """pip ``--platform`` tags of this machine's architecture (the artifact's native wheels must load here)."""
    arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(platform.machine().lower(), platform.machine().lower())
    return f"--platform manylinux2014_{arch} --platform manylinux_2_28_{arch}"


def build_artifact(into: Path) -> Path:
    """``make build-ApiFunction`` into ``into`` (what sam build runs), for this machine's architecture."""
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "build-ApiFunction",
            f"ARTIFACTS_DIR={into}",
            f"LAMBDA_PLATFORMS={local_platforms()}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchSetupError("the build failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
    return into


def _env(artifact: Path, *, tracing: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYTHON", "STEPGRAPH_"))}
    env.update(LAMBDA_ENV)
    env["LAMBDA_TASK_ROOT"] = str(artifact)
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def _time(
    python: str, artifact: Path, module: str, env: dict[str, str], *, bytecode: bool = True, code: str | None = None
) -> tuple[float, float]:
    """Wall and CPU ms of one cold import in a fresh interpreter (or of ``code``, which prints them)."""
    flags = ["-S"]
    if not bytecode:  # look for bytecode in an empty directory: every module is compiled, as without it
        flags += ["-X", f"pycache_prefix={tempfile.mkdtemp(prefix='no-bytecode-')}"]
    code = code or _TIMER.format(root=str(artifact), module=module)
    wall, cpu = _last_line(python, [*flags, "-c", code], artifact, env).split()
    return float(wall), float(cpu)


def library_modules(python: str, artifact: Path, module: str, env: dict[str, str]) -> list[str]:
    """The library modules importing ``module`` loads from the artifact, in the order they were loaded."""
    code = _LIBRARIES.format(root=str(artifact), module=module, ours=OURS)
    names: list[str] = json.loads(_last_line(python, ["-S", "-c", code], artifact, env))
    return names


def _last_line(python: str, args: list[str], artifact: Path, env: dict[str, str]) -> str:
    """The last line a fresh interpreter run in the artifact prints; ``BenchSetupError`` if it fails."""
    done = subprocess.run([python, *args], capture_output=True, text=True, env=env, cwd=artifact, check=False)
    if done.returncode != 0:
        raise BenchSetupError((done.stderr.strip().splitlines() or ["import failed"])[-1])
    return done.stdout.strip().splitlines()[-1]


def parse_importtime(stderr: str) -> dict[str, int]:
    """``top-level package -> microseconds`` from ``-X importtime``: the self time of all its modules, summed."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        root = parts[2].strip().split(".")[0]
        out[root] = out.get(root, 0) + int(parts[0])
    return out


def measure(name: str, module: str, python: str, artifact: Path, runs: int = 5) -> ImportFigure:
    """Time ``import module`` from the artifact in fresh interpreters, and find its heaviest packages."""
    figure = ImportFigure(name, module)
    traced, untraced = _env(artifact, tracing=True), _env(artifact, tracing=False)
    try:
        _time(python, artifact, module, traced)  # warm the file cache, as a warm host has it
        names = library_modules(python, artifact, module, traced)
        figure.libraries = len(names)
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="libraries-") as listed:
            listed.write(json.dumps(names))
            listed.flush()
            alone = _LIBRARIES_TIMER.format(root=str(artifact), names=listed.name)
            for _ in range(runs):
                wall, cpu = _time(python, artifact, module, traced)
                figure.wall_ms.append(wall)
                figure.cpu_ms.append(cpu)
                figure.untraced_cpu_ms.append(_time(python, artifact, module, untraced)[1])
                figure.libraries_cpu_ms.append(_time(python, artifact, module, traced, code=alone)[1])
        for _ in range(max(1, runs // 2)):
            figure.no_bytecode_cpu_ms.append(_time(python, artifact, module, traced, bytecode=False)[1])
    except BenchSetupError as exc:
        figure.error = str(exc)
        return figure
    profiled = subprocess.run(
        [python, "-S", "-X", "importtime", "-c", f"import sys; sys.path.insert(0, {str(artifact)!r}); import {module}"],
        capture_output=True,
        text=True,
        env=traced,
        cwd=artifact,
        check=False,
    )
    times = parse_importtime(profiled.stderr)
    interesting = {k: v for k, v in times.items() if k not in ("encodings", "__main__") and not k.startswith("_")}
    figure.heaviest = [(k, v / 1000) for k, v in sorted(interesting.items(), key=lambda kv: -kv[1])[:6]]
    return figure


@dataclass
class FirstRequest:
    """CPU ms of the API's cold import and of the first request right after it, per request."""

    name: str
    import_ms: list[float] = field(default_factory=list)
    request_ms: list[float] = field(default_factory=list)
    status: int | str | None = None
    function: str = "api"


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _api_event(method: str, path: str) -> str:
    """``events/api-get-run.json`` (an API Gateway proxy event) for another method and path."""
    event = json.loads((ROOT / "events" / "api-get-run.json").read_text())
    event.update(path=path, httpMethod=method, pathParameters={"proxy": path.lstrip("/")})
    event["requestContext"].update(path=f"/v1{path}", httpMethod=method)
    return json.dumps(event)


def _executor_event(sample: str, prefix: str) -> str:
    """``events/<sample>.json`` for a run of its own (each cold invocation starts its node afresh), sent by the
    execution of that run on this stack's state machine."""
    event = json.loads((ROOT / "events" / f"{sample}.json").read_text())
    run = event["doc"]["run"]
    run["run_id"] = f"r_{secrets.token_hex(8)}"
    machine = state_machine_name(prefix, run["graph_id"], run["version"])
    event["execution"] = f"arn:aws:states:us-east-1:123456789012:execution:{machine}:{run['run_id']}"
    return json.dumps(event)


def measure_first_requests(python: str, artifact: Path, runs: int = 5) -> list[FirstRequest]:
    """The API's import and first request, and the executor's import and first invocation, in fresh interpreters
    from the artifact, their AWS calls answered by a local cloud's moto server on loopback (a graph and one
    finished run in the table; each executor invocation acts for a run of its own)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request the handlers make

    from bench.common import example, session
    from functions.settings import get_settings

    port = _free_port()
    with session() as runner:
        spec, sample = example("echo-chain")
        run = runner.run(runner.create(spec), sample)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            env = _env(artifact, tracing=True)
            env.update({k: v for k, v in os.environ.items() if k.startswith(("STEPGRAPH_", "POWERTOOLS_"))})
            env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing")
            env.update(AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=runner.cloud.region)
            env.update(AWS_REGION=runner.cloud.region, STEPGRAPH_API_KEY="local-dev-key")
            prefix = get_settings().prefix
            calls: list[tuple[str, str, str, Callable[[], str]]] = [
                (name, "api", "_r['statusCode']", lambda m=method, p=path: _api_event(m, p))
                for name, method, path in (
                    ("GET /runs/{id}", "GET", f"/runs/{run.run_id}"),
                    ("GET /graphs", "GET", "/graphs"),
                )
            ]
            calls += [
                (name, "executor", "'ok'", lambda s=sample: _executor_event(s, prefix))
                for name, sample in EXECUTOR_SAMPLES.items()
            ]
            results = []
            for name, function, status, event in calls:
                figure = FirstRequest(name, function=function)
                for _ in range(runs + 1):  # the first warms the file cache, as a warm host has it
                    code = _FIRST_REQUEST.format(
                        root=str(artifact), module=HANDLERS[function], event=event(), status=status
                    )
                    done = subprocess.run(
                        [python, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=artifact, check=False
                    )
                    if done.returncode != 0:
                        raise BenchSetupError((done.stderr.strip().splitlines() or ["request failed"])[-1])
                    imported, requested, answered = done.stdout.strip().splitlines()[-1].split()
                    figure.import_ms.append(float(imported))
                    figure.request_ms.append(float(requested))
                    figure.status = int(answered) if answered.isdigit() else answered
                figure.import_ms, figure.request_ms = figure.import_ms[1:], figure.request_ms[1:]
                results.append(figure)
            return results
        finally:
            server.stop()


def measure_all(runs: int = 5) -> tuple[list[ImportFigure], list[FirstRequest]]:
    """Build the artifact once and measure every handler from it, and the API's first requests."""
    python = lambda_python()
    with tempfile.TemporaryDirectory(prefix="stepgraph-artifact-") as tmp:
        artifact = build_artifact(Path(tmp) / "artifact")
        imports = [measure(name, module, python, artifact, runs) for name, module in HANDLERS.items()]
        return imports, measure_first_requests(python, artifact, runs)


def figures(quick: bool = False) -> list[dict[str, object]]:
    """Rows for ``make bench`` (``bench/__main__.py``)."""
    runs = 3 if quick else 5
    how = f"median of {runs} fresh Python 3.13 interpreters importing the handler from the built artifact"
    try:
        measured, first = measure_all(runs)
    except BenchSetupError as exc:
        return [{"section": "imports", "name": "handler cold import", "value": "error", "unit": "", "how": str(exc)}]
    rows: list[dict[str, object]] = []
    for req in first:
        total = [i + r for i, r in zip(req.import_ms, req.request_ms, strict=True)]
        rows.append(
            {
                "section": "imports",
                "name": f"{req.function} cold import + first {req.name}, CPU",
                "value": statistics.median(total),
                "unit": "ms",
                "how": f"median of {runs} fresh Python 3.13 interpreters: import the {req.function} handler from the"
                f" artifact, then one request (answered {req.status}; AWS calls to a local moto server):"
                f" the request alone {statistics.median(req.request_ms):.0f} ms; process_time",
            }
        )
    for fig in measured:
        if fig.error:
            error = {"section": "imports", "name": f"{fig.name} cold import", "value": "error", "unit": ""}
            rows.append({**error, "how": fig.error})
            continue
        heavy = ", ".join(f"{k} {v:.0f}" for k, v in fig.heaviest[:4])
        goal = f"; goal under {GOALS_MS[fig.name]:.0f} ms" if fig.name in GOALS_MS else ""
        rows += [
            {
                "section": "imports",
                "name": f"{fig.name} cold import, CPU",
                "value": fig.median(fig.cpu_ms),
                "unit": "ms",
                "how": f"{how}, shipped bytecode, X-Ray tracing on (as deployed){goal}; process_time",
            },
            {
                "section": "imports",
                "name": f"{fig.name} cold import, wall",
                "value": fig.median(fig.wall_ms),
                "unit": "ms",
                "how": f"{how}, as deployed; heaviest packages (self ms, -X importtime): {heavy}",
            },
            {
                "section": "imports",
                "name": f"{fig.name} cold import, CPU, its libraries alone",
                "value": fig.median(fig.libraries_cpu_ms),
                "unit": "ms",
                "how": f"median of {len(fig.libraries_cpu_ms)} fresh Python 3.13 interpreters importing the"
                f" {fig.libraries} library modules the handler loads, in its order, without stepgraph's own modules"
                " (the floor of the handler's figure); as deployed",
            },
            {
                "section": "imports",
                "name": f"{fig.name} cold import, CPU, tracing off",
                "value": fig.median(fig.untraced_cpu_ms),
                "unit": "ms",
                "how": f"{how}, Tracing=false (POWERTOOLS_TRACE_DISABLED=true: no X-Ray SDK)",
            },
            {
                "section": "imports",
                "name": f"{fig.name} cold import, CPU, without bytecode",
                "value": fig.median(fig.no_bytecode_cpu_ms),
                "unit": "ms",
                "how": f"{how}, its bytecode ignored (-X pycache_prefix=<empty>): a build without it",
            },
        ]
    return rows


def report(measured: list[ImportFigure], first: list[FirstRequest]) -> str:
    lines = [
        "Cold import of the handlers from the built artifact on Python 3.13 (median ms):",
        "",
        f"{'handler':<9} {'CPU':>7} {'libraries':>10} {'wall':>7} {'no tracing':>11} {'no bytecode':>12}"
        f" {'goal':>6}  heaviest packages",
    ]
    for fig in measured:
        if fig.error:
            lines.append(f"{fig.name:<9} {fig.error}")
            continue
        goal = f"{GOALS_MS[fig.name]:.0f}" if fig.name in GOALS_MS else "-"
        heavy = ", ".join(f"{k} {v:.0f}" for k, v in fig.heaviest)
        lines.append(
            f"{fig.name:<9} {fig.median(fig.cpu_ms) or 0:>7.1f} {fig.median(fig.libraries_cpu_ms) or 0:>10.1f}"
            f" {fig.median(fig.wall_ms) or 0:>7.1f}"
            f" {fig.median(fig.untraced_cpu_ms) or 0:>11.1f} {fig.median(fig.no_bytecode_cpu_ms) or 0:>12.1f}"
            f" {goal:>6}  {heavy}"
        )
    lines += [
        "",
        "libraries: the library modules the handler loads, imported alone in its order, without stepgraph's own"
        " modules (CPU).",
    ]
    lines += ["", "Cold import, then the first request in the same interpreter (median CPU ms):", ""]
    for req in first:
        total = [i + r for i, r in zip(req.import_ms, req.request_ms, strict=True)]
        lines.append(
            f"{req.function:<9} {req.name:<16} import {statistics.median(req.import_ms):>6.1f}"
            f"  request {statistics.median(req.request_ms):>6.1f}"
            f"  together {statistics.median(total):>6.1f}  (answered {req.status})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per figure (default 5)")
    args = parser.parse_args(argv)
    try:
        print(report(*measure_all(args.runs)))
    except BenchSetupError as exc:
        print(f"cannot measure: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
