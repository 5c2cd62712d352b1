"""Bounded tools: ``code.*`` and ``text.analyze`` on their maximum input, and how time grows with size; what
running CPU-bound tools in a worker process (so a timeout can stop them) costs.

Each tool runs in this process (``registry.get(name).invoke``) on shapes that once took quadratic time:
one-line functions with a magic number each (an issue per line, a function per line), and HTML made of
unclosed tags. ``x4 ratio`` is the time for 4n divided by the time for n, measured in the same run: about 4
for linear work, 16 for quadratic.
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import Figure

SECTION = "tools"
MAX_SOURCE = 1_000_000
CODE_TOOLS = ("code.extract_functions", "code.complexity", "code.detect_issues", "code.score", "code.suggest")


def one_liners(size: int) -> str:
    """Python source of about ``size`` characters: ``def fN(): return N+3`` lines (a missing docstring and a
    magic number on every line)."""
    lines, total, i = [], 0, 0
    while True:
        line = f"def f{i}(): return {i + 3}\n"
        if total + len(line) > size:
            return "".join(lines)
        lines.append(line)
        total += len(line)
        i += 1


def html_soup(size: int) -> str:
    """``<a `` repeated: tags that never close."""
    return ("<a " * (size // 3 + 1))[:size]


def prose(size: int) -> str:
    text = "The retries were good, not bad. <p>Errors are <b>clearer</b> now &amp; faster!</p> "
    return (text * (size // len(text) + 1))[:size]


def timed(tool: str, params: dict[str, Any], runs: int) -> float:
    """Best wall time of ``runs`` calls."""
    return timed_both(tool, params, runs)[0]


def timed_both(tool: str, params: dict[str, Any], runs: int) -> tuple[float, float]:
    """Best wall time and best CPU time (this process) of ``runs`` calls: on a shared, loaded machine the wall
    time includes waiting for a core, the CPU time does not."""
    from functions.executor.tools import registry

    best_wall = best_cpu = float("inf")
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        registry.get(tool).invoke(params)
        best_wall = min(best_wall, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def worker_figures(runs: int) -> list[Figure]:
    """What running CPU-bound tools in a worker process costs: its start, then each call's round trip."""
    import time as clock

    from functions.executor import sandbox
    from functions.executor.tools import registry
    from functions.executor.tools.base import ToolContext

    tool = registry.get("transform")
    params = {"value": [3, 1, 2], "expression": "sort(@)"}
    pool = sandbox.WorkerPool()
    started = clock.perf_counter()
    pool.run(tool.name, params, {}, lambda line: None, clock.monotonic() + 60)
    first = clock.perf_counter() - started
    calls = 20 * runs
    started = clock.perf_counter()
    for _ in range(calls):
        pool.run(tool.name, params, {}, lambda line: None, clock.monotonic() + 60)
    per_call = (clock.perf_counter() - started) / calls
    started = clock.perf_counter()
    for _ in range(calls):
        tool.invoke(params, ToolContext())
    in_process = (clock.perf_counter() - started) / calls
    pool.shutdown()
    how = "transform sort(@) on 3 numbers"
    return [
        Figure(SECTION, "worker process start (first CPU-bound tool of a sandbox)", round(first * 1000, 1), "ms", how),
        Figure(
            SECTION,
            "CPU-bound tool call through the worker",
            round(per_call * 1000, 2),
            "ms",
            f"{how}, mean of {calls}",
        ),
        Figure(SECTION, "the same call in process (no timeout control)", round(in_process * 1000, 2), "ms", how),
    ]


def figures(quick: bool = False) -> list[Figure]:
    runs = 1 if quick else 3
    small = 25_000 if quick else 62_500
    rows: list[Figure] = worker_figures(runs)
    cases: list[tuple[str, str, Any]] = [(tool, "source", one_liners) for tool in CODE_TOOLS]
    cases += [("text.analyze", "text", html_soup), ("text.analyze", "text", prose)]
    for tool, field, shape in cases:
        extra = {"strip_html": True} if tool == "text.analyze" else {}
        label = f"{tool} ({shape.__name__.replace('_', ' ')})"
        n = timed(tool, {field: shape(small), **extra}, runs)
        n4 = timed(tool, {field: shape(small * 4), **extra}, runs)
        rows.append(
            Figure(
                SECTION,
                f"{label}: x4 ratio",
                round(n4 / n, 2) if n else 0,
                "x",
                f"best of {runs}: {small * 4:,} chars {n4:.3f} s / {small:,} chars {n:.3f} s "
                "(4 = linear, 16 = quadratic)",
            )
        )
        if not quick:
            if field == "source" and tool == CODE_TOOLS[0]:
                import ast

                from functions.executor.tools import _code

                source = shape(MAX_SOURCE)
                started = time.perf_counter()
                with _code.gc_paused():
                    ast.parse(source)
                floor = time.perf_counter() - started
                how = "Python's own parse of the 1 MB source every code.* tool starts with (the floor; GC paused)"
                rows.append(Figure(SECTION, "ast.parse of the 1 MB source", round(floor, 3), "s", how))
            whole, cpu = timed_both(tool, {field: shape(MAX_SOURCE), **extra}, runs)
            how = f"best of {runs} calls on the maximum input, wall time (CPU time {cpu:.3f} s); target < 2 s"
            rows.append(Figure(SECTION, f"{label}: 1 MB input", round(whole, 3), "s", how))
    return rows
