"""Cold-import time of the Lambda handlers: what a cold start pays before the first event.

Each figure comes from fresh interpreters (``python -c``) with a Lambda-like environment, so
Powertools' Tracer loads the X-Ray SDK as it does in AWS (and, for comparison, with tracing disabled).
``import ms`` is the median wall time of ``import <handler module>``; the heaviest packages come from
``python -X importtime``
(self time of every module, summed by top-level package; ``-X importtime`` adds its own overhead).

Run: ``python -m bench.imports [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = {
    "executor": "functions.executor.handler",
    "api": "functions.api.handler",
    "events": "functions.events.handler",
}
LAMBDA_ENV = {
    "LAMBDA_TASK_ROOT": str(ROOT),
    "AWS_LAMBDA_FUNCTION_NAME": "stepgraph-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
    "POWERTOOLS_SERVICE_NAME": "stepgraph",
    "POWERTOOLS_METRICS_NAMESPACE": "stepgraph",
    "STEPGRAPH_TABLE": "stepgraph-bench",
}
_TIMER = (
    "import time as _t; _w, _c = _t.perf_counter(), _t.process_time(); import {module}; "
    "print((_t.perf_counter() - _w) * 1000, (_t.process_time() - _c) * 1000)"
)


@dataclass
class ImportFigure:
    """The import cost of one handler."""

    name: str
    module: str
    runs_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    untraced_ms: list[float] = field(default_factory=list)
    untraced_cpu_ms: list[float] = field(default_factory=list)
    heaviest: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.runs_ms) if self.runs_ms else None

    @property
    def cpu_median_ms(self) -> float | None:
        return statistics.median(self.cpu_ms) if self.cpu_ms else None

    @property
    def untraced_cpu_median_ms(self) -> float | None:
        return statistics.median(self.untraced_cpu_ms) if self.untraced_cpu_ms else None


def _env(tracing: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_PROFILE", "POWERTOOLS_TRACE_DISABLED"))}
    env.update(LAMBDA_ENV)
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


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


def measure(name: str, module: str, runs: int = 5, python: str = sys.executable) -> ImportFigure:
    """Time ``import module`` in ``runs`` fresh interpreters and find its heaviest dependencies."""
    figure = ImportFigure(name, module)
    env = _env()
    plans = ((figure.runs_ms, figure.cpu_ms, env), (figure.untraced_ms, figure.untraced_cpu_ms, _env(tracing=False)))
    for wall, cpu, run_env in plans:
        # One warm-up run compiles bytecode, as a deployment package ships it.
        for i in range(runs + 1):
            done = subprocess.run(
                [python, "-c", _TIMER.format(module=module)],
                capture_output=True,
                text=True,
                env=run_env,
                cwd=ROOT,
                check=False,
            )
            if done.returncode != 0:
                figure.error = (done.stderr.strip().splitlines() or ["failed"])[-1]
                return figure
            if i:
                wall_ms, cpu_ms = done.stdout.strip().splitlines()[-1].split()
                wall.append(float(wall_ms))
                cpu.append(float(cpu_ms))
    traced = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    times = parse_importtime(traced.stderr)
    interesting = {
        k: v
        for k, v in times.items()
        if k not in ("site", "encodings", "__main__") and not k.startswith(("_", "__editable"))
    }
    figure.heaviest = [(k, v / 1000) for k, v in sorted(interesting.items(), key=lambda kv: -kv[1])[:6]]
    return figure


def measure_all(runs: int = 5) -> list[ImportFigure]:
    return [measure(name, module, runs) for name, module in HANDLERS.items()]


def figures(quick: bool = False) -> list[dict[str, object]]:
    """Rows for ``make bench`` (``bench/__main__.py``): wall and CPU ms per handler, tracing on and off."""
    runs = 3 if quick else 5
    how = f"median of {runs} fresh interpreters, `import functions.<name>.handler`, Lambda-like env"
    rows: list[dict[str, object]] = []
    for fig in measure_all(runs):
        if fig.error:
            rows.append(
                {
                    "section": "imports",
                    "name": f"{fig.name} handler cold import",
                    "value": "error",
                    "unit": "",
                    "how": fig.error[:200],
                }
            )
            continue
        heavy = ", ".join(f"{k} {v:.0f}" for k, v in fig.heaviest[:3])
        rows += [
            {
                "section": "imports",
                "name": f"{fig.name} handler cold import, wall",
                "value": fig.median_ms,
                "unit": "ms",
                "how": f"{how}, X-Ray tracing on; heaviest packages (self ms): {heavy}",
            },
            {
                "section": "imports",
                "name": f"{fig.name} handler cold import, CPU",
                "value": fig.cpu_median_ms,
                "unit": "ms",
                "how": f"{how}, X-Ray tracing on; process_time, steadier on a busy machine",
            },
            {
                "section": "imports",
                "name": f"{fig.name} handler cold import, CPU, tracing off",
                "value": fig.untraced_cpu_median_ms,
                "unit": "ms",
                "how": f"{how}, POWERTOOLS_TRACE_DISABLED=true",
            },
        ]
    return rows


def report(figures: list[ImportFigure]) -> str:
    lines = [
        "Cold import of the Lambda handlers (functions.<name>.handler): median wall and CPU ms of the import in",
        "fresh interpreters, Lambda-like environment, X-Ray tracing on (as deployed) and off; CPU time is the",
        "steadier figure on a busy machine;",
        "heaviest packages: self ms of their modules summed, from -X importtime with tracing on",
        "",
        f"{'handler':<9} {'wall ms':>8} {'CPU ms':>7} {'CPU ms, no tracing':>19}  heaviest packages (ms)",
    ]
    for fig in figures:
        if fig.error:
            lines.append(f"{fig.name:<9} {'n/a':>8} {'n/a':>7} {'n/a':>19}  {fig.module}: {fig.error}")
            continue
        heavy = ", ".join(f"{k} {v:.0f}" for k, v in fig.heaviest)
        lines.append(
            f"{fig.name:<9} {fig.median_ms or 0:>8.1f} {fig.cpu_median_ms or 0:>7.1f}"
            f" {fig.untraced_cpu_median_ms or 0:>19.1f}  {heavy}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per handler (default 5)")
    args = parser.parse_args(argv)
    print(report(measure_all(args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
