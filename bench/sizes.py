"""Compile time and definition size for graphs of 10, 100 and 500 nodes: chain, wide, layered random DAG.

Pure Python (no AWS): validation (when ``statemachine.validation`` is there) plus compilation, best of a few
repetitions, and the bytes of the compact JSON definition CreateStateMachine receives (limit: 1 MB).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bench.common import Figure, chain, layered_dag, timed, wide

if TYPE_CHECKING:
    from collections.abc import Callable

EXECUTOR_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor"
SECTION = "compile"
SIZES = (10, 100, 500)


def _validator() -> Callable[[dict[str, Any]], Any]:
    """Full validation with the tool catalog when it exists; the spec model alone otherwise."""
    try:
        from functions.executor.tools import registry
        from statemachine.validation import validate
    except ImportError:
        from statemachine.spec import GraphSpec

        return GraphSpec.model_validate
    return lambda raw: validate(raw, registry)


def shapes(n: int) -> dict[str, dict[str, Any]]:
    return {
        "chain": chain(n),
        "wide": wide(n, max_concurrency=10),
        "layered": layered_dag(n, seed=n),
    }


def figures(quick: bool = False) -> list[Figure]:
    from statemachine.compiler import compile_graph, definition_json

    validate = _validator()
    rows: list[Figure] = []
    for n in SIZES:
        for shape, raw in shapes(n).items():
            repeat = 1 if quick else 5
            seconds, spec = timed(validate, raw, repeat=repeat)
            compile_seconds, definition = timed(compile_graph, spec, executor_arn=EXECUTOR_ARN, repeat=repeat)
            both = timed(lambda raw: compile_graph(validate(raw), executor_arn=EXECUTOR_ARN), raw, repeat=repeat)[0]
            cpu = timed_cpu(lambda raw: compile_graph(validate(raw), executor_arn=EXECUTOR_ARN), raw, repeat=repeat)
            size = len(definition_json(definition).encode())
            how = f"best of {repeat}, perf_counter, in-process"
            rows.append(Figure(SECTION, f"{shape} {n}: validate", round(seconds * 1000, 1), "ms", how))
            rows.append(Figure(SECTION, f"{shape} {n}: compile", round(compile_seconds * 1000, 1), "ms", how))
            goal = "; goal < 50 ms at 500 nodes" if n == 500 else ""
            rows.append(
                Figure(
                    SECTION,
                    f"{shape} {n}: validate + compile",
                    round(both * 1000, 1),
                    "ms",
                    f"{how} (CPU time {cpu * 1000:.1f} ms: on a busy machine the wall time includes waiting){goal}",
                )
            )
            rows.append(
                Figure(
                    SECTION,
                    f"{shape} {n}: definition",
                    size,
                    "bytes",
                    f"compact JSON; {size / n:.0f} B/node, {size / 1_048_576:.1%} of the 1 MB limit",
                )
            )
    return rows


def timed_cpu(fn: Callable[[Any], Any], arg: Any, repeat: int) -> float:
    """Best-of-``repeat`` CPU time (this process) of ``fn(arg)``, after one warm-up call."""
    fn(arg)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn(arg)
        best = min(best, time.process_time() - started)
    return best
