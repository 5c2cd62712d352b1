"""Cold start of what ships: the handlers' import from the built artifact, on the Lambda runtime's Python.

The artifact is what ``sam build`` makes (the Makefile's ``build-ApiFunction`` target: both packages, the
runtime dependencies as wheels, bytecode compiled by Python 3.13), built for this machine's architecture so
its native wheels load here. Each figure is the median of fresh Python 3.13 interpreters importing
``functions.<name>.handler`` from it, in a Lambda-like environment where nothing can be written (as
``/var/task``): with the shipped bytecode and X-Ray tracing on (as deployed by default), tracing off, and with
the bytecode ignored (what a build without it costs every cold start). CPU time (``process_time``) is the
steadier figure on a busy machine; the heaviest packages come from ``-X importtime`` (self time of every
module, summed by top-level package; ``-X importtime`` adds its own overhead).

Goals (issue 10): API under 300 ms, executor under 250 ms.

Run: ``python -m bench.imports [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = {
    "executor": "functions.executor.handler",
    "api": "functions.api.handler",
    "events": "functions.events.handler",
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
    python: str, artifact: Path, module: str, env: dict[str, str], *, bytecode: bool = True
) -> tuple[float, float]:
    """Wall and CPU ms of one cold import in a fresh interpreter."""
    flags = ["-S"]
    if not bytecode:  # look for bytecode in an empty directory: every module is compiled, as without it
        flags += ["-X", f"pycache_prefix={tempfile.mkdtemp(prefix='no-bytecode-')}"]
    done = subprocess.run(
        [python, *flags, "-c", _TIMER.format(root=str(artifact), module=module)],
        capture_output=True,
        text=True,
        env=env,
        cwd=artifact,
        check=False,
    )
    if done.returncode != 0:
        raise BenchSetupError((done.stderr.strip().splitlines() or ["import failed"])[-1])
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


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
        for _ in range(runs):
            wall, cpu = _time(python, artifact, module, traced)
            figure.wall_ms.append(wall)
            figure.cpu_ms.append(cpu)
            figure.untraced_cpu_ms.append(_time(python, artifact, module, untraced)[1])
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


def measure_all(runs: int = 5) -> list[ImportFigure]:
    """Build the artifact once and measure every handler from it."""
    python = lambda_python()
    with tempfile.TemporaryDirectory(prefix="stepgraph-artifact-") as tmp:
        artifact = build_artifact(Path(tmp) / "artifact")
        return [measure(name, module, python, artifact, runs) for name, module in HANDLERS.items()]


def figures(quick: bool = False) -> list[dict[str, object]]:
    """Rows for ``make bench`` (``bench/__main__.py``)."""
    runs = 3 if quick else 5
    how = f"median of {runs} fresh Python 3.13 interpreters importing the handler from the built artifact"
    try:
        measured = measure_all(runs)
    except BenchSetupError as exc:
        return [{"section": "imports", "name": "handler cold import", "value": "error", "unit": "", "how": str(exc)}]
    rows: list[dict[str, object]] = []
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


def report(measured: list[ImportFigure]) -> str:
    lines = [
        "Cold import of the handlers from the built artifact on Python 3.13 (median ms):",
        "",
        f"{'handler':<9} {'CPU':>7} {'wall':>7} {'no tracing':>11} {'no bytecode':>12} {'goal':>6}  heaviest packages",
    ]
    for fig in measured:
        if fig.error:
            lines.append(f"{fig.name:<9} {fig.error}")
            continue
        goal = f"{GOALS_MS[fig.name]:.0f}" if fig.name in GOALS_MS else "-"
        heavy = ", ".join(f"{k} {v:.0f}" for k, v in fig.heaviest)
        lines.append(
            f"{fig.name:<9} {fig.median(fig.cpu_ms) or 0:>7.1f} {fig.median(fig.wall_ms) or 0:>7.1f}"
            f" {fig.median(fig.untraced_cpu_ms) or 0:>11.1f} {fig.median(fig.no_bytecode_cpu_ms) or 0:>12.1f}"
            f" {goal:>6}  {heavy}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per figure (default 5)")
    args = parser.parse_args(argv)
    try:
        print(report(measure_all(args.runs)))
    except BenchSetupError as exc:
        print(f"cannot measure: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
