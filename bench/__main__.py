"""``make bench``: run every bench module and print one table of figures (value, unit, how it was measured).

A bench module is ``bench/<name>.py`` with ``figures(quick: bool = False)`` returning rows: ``Figure``
objects or dicts with ``name``, ``value``, ``unit``, ``how`` (and optionally ``section``). Each module runs in
its own process (cold imports stay cold, one module's failure or global state cannot spoil another's), with
a time limit; its rows come back as JSON. ``--markdown`` prints the table as Markdown (for docs/figures.md).

    python -m bench [--quick] [--only sizes,runs] [--markdown] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOT_MODULES = {"__init__", "__main__", "common"}
# Pure figures first, the local-cloud ones last; modules not named here run in between, by name.
FIRST = ("sizes",)
LAST = ("runs", "badinput", "history", "scale")
MODULE_TIMEOUTS = {"scale": 1800.0, "history": 1200.0, "imports": 600.0}
"""Modules that need longer than ``--timeout`` (the 10,000-item foreach; imports builds an artifact first)."""


def modules() -> list[str]:
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_MODULES and not p.stem.startswith("_"))
    first = [n for n in FIRST if n in names]
    last = [n for n in LAST if n in names]
    return first + [n for n in names if n not in first and n not in last] + last


def _row(module: str, raw: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        raw = dataclasses.asdict(raw)
    elif not isinstance(raw, dict):
        raw = {k: getattr(raw, k) for k in ("section", "name", "value", "unit", "how") if hasattr(raw, k)}
    return {
        "section": str(raw.get("section") or module),
        "name": str(raw.get("name", "?")),
        "value": raw.get("value"),
        "unit": str(raw.get("unit", "")),
        "how": str(raw.get("how", "")),
    }


def run_module_here(name: str, quick: bool) -> list[dict[str, Any]]:
    """Import ``bench.<name>`` and call its ``figures``; the rows as plain dicts."""
    module = importlib.import_module(f"bench.{name}")
    figures = getattr(module, "figures", None)
    if figures is None:
        raise RuntimeError(f"bench/{name}.py has no figures() function")
    try:
        produced = figures(quick=quick)
    except TypeError:
        produced = figures()
    return [_row(name, r) for r in produced]


def run_module(name: str, quick: bool, timeout: float) -> tuple[list[dict[str, Any]], float]:
    """Run one module in a child process; on failure a single row says what went wrong."""
    started = time.perf_counter()
    timeout = max(timeout, MODULE_TIMEOUTS.get(name, 0.0))
    command = [sys.executable, "-m", "bench", "--child", name] + (["--quick"] if quick else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return [_row(name, {"name": "(module)", "value": "timed out", "how": f"over {timeout:.0f}s"})], timeout
    elapsed = time.perf_counter() - started
    marker = "BENCH-ROWS:"
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(marker):
            return list(json.loads(line[len(marker) :])), elapsed
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return [_row(name, {"name": "(module)", "value": "failed", "how": tail[0][:200]})], elapsed


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    cores = os.cpu_count() or 0
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
        memory = f"{kib / 1_048_576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "? GiB"
    return f"{cores} cores, {memory}, {platform.machine()}, Python {platform.python_version()}"


def revision() -> str:
    """The commit measured (with ``+changes`` when the tree differs from it)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE.parent)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=HERE.parent)
    except OSError:
        return "an unknown commit"
    if head.returncode != 0:
        return "an unknown commit"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    header = ["section", "figure", "value", "unit", "how measured"]
    body = [[r["section"], r["name"], _fmt(r["value"]), r["unit"], r["how"]] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header[:-1])]
    out = ["  ".join(h.ljust(w) for h, w in zip(header[:-1], widths, strict=True)) + "  " + header[-1]]
    out.append("  ".join("-" * w for w in widths) + "  " + "-" * 12)
    for row in body:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].ljust(widths[3])]
        out.append("  ".join(cells) + "  " + row[4])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", default="", help="comma-separated module names (default: all)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds allowed per module")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        # The handlers log JSON lines to stdout (as in Lambda); keep stdout for the rows alone.
        real_stdout = sys.stdout
        with open(os.devnull, "w") as sink:
            sys.stdout = sink
            try:
                child_rows = run_module_here(args.child, args.quick)
            finally:
                sys.stdout = real_stdout
        print("BENCH-ROWS:" + json.dumps(child_rows, default=str))
        return 0

    names = [n for n in modules() if not args.only or n in args.only.split(",")]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in names:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        module_rows, seconds = run_module(name, args.quick, args.timeout)
        print(f"bench: {name} done in {seconds:.1f}s", file=sys.stderr, flush=True)
        rows.extend(module_rows)
    total = time.perf_counter() - started
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"stepgraph bench at {revision()}, {stamp}, {machine()}; local cloud = moto + in-process Lambda; "
        f"{total:.0f}s in all"
    )
    print(table(rows, args.markdown))
    failed = [r for r in rows if r["name"] == "(module)"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
