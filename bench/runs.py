"""Figures of runs executed in the local cloud (moto's ASL interpreter, in-process Lambda, the real handlers).

- state transitions per executed node (chain, wide fan-out, diamond lattice, the code-review loop);
- end-to-end overhead per node: execution wall time minus tool time, chains and fan-outs of 50;
- makespan / critical path for random layered DAGs of ``util.sleep`` nodes of unequal length;
- runs completed per second with 50 runs in flight.

Each section uses a fresh local stack. Local figures measure this machine's emulation, not AWS latency.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import TYPE_CHECKING, Any

from bench.common import Figure, chain, critical_path, example, lattice, layered_dag, session, wide

if TYPE_CHECKING:
    from bench.common import Execution, Runner


def _executed_nodes(runner: Runner, run_id: str) -> int:
    """Node executions that ran a tool: one per SUCCEEDED or FAILED node record (loop iterations count each)."""
    return sum(1 for r in runner.node_records(run_id) if r.status in ("SUCCEEDED", "FAILED"))


def transitions() -> list[Figure]:
    how = "StateEntered events of GetExecutionHistory / node records that ran (loop iterations count)"
    cases: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "chain of 10": (chain(10), {}),
        "wide fan-out of 10 (root, 8, join)": (wide(10, max_concurrency=10), {}),
        "diamond lattice of 16 (1-4-1 rows)": (lattice(4), {}),
        "code-review loop": example("code-review"),
    }
    rows: list[Figure] = []
    with session() as runner:
        for label, (spec, run_input) in cases.items():
            graph_id = runner.create(spec)
            execution = runner.run(graph_id, run_input)
            if execution.status != "SUCCEEDED":
                rows.append(Figure("transitions", label, f"run {execution.status}", "-", execution.why()))
                continue
            count = execution.state_transitions()
            executed = _executed_nodes(runner, execution.run_id)
            rows.append(
                Figure(
                    "transitions",
                    label,
                    round(count / max(1, executed), 2),
                    "transitions/node",
                    f"{count} transitions, {executed} node runs; {how}",
                )
            )
    return rows


def _tool_ms(runner: Runner, run_id: str) -> list[int]:
    return [int(r.tool_ms or 0) for r in runner.node_records(run_id)]


def overhead(quick: bool = False) -> list[Figure]:
    rows: list[Figure] = []
    repeat = 1 if quick else 3
    with session() as runner:
        for label, spec, combine in (
            ("chain of 50", chain(50), sum),
            ("fan-out of 50 (root, 48, join; max_concurrency 50)", wide(50, max_concurrency=50), None),
        ):
            graph_id = runner.create(spec)
            samples: list[float] = []
            for _ in range(repeat):
                execution = runner.run(graph_id)
                if execution.status != "SUCCEEDED":
                    rows.append(Figure("overhead", label, f"run {execution.status}", "-", execution.why()))
                    break
                tools = _tool_ms(runner, execution.run_id)
                if combine is sum:
                    tool_seconds = sum(tools) / 1000
                else:  # the tools on the critical path: root, the slowest middle node, join
                    by_node = {r.node: int(r.tool_ms or 0) for r in runner.node_records(execution.run_id)}
                    middle = [v for k, v in by_node.items() if k not in ("root", "join")]
                    tool_seconds = (by_node.get("root", 0) + max(middle, default=0) + by_node.get("join", 0)) / 1000
                samples.append((execution.seconds - tool_seconds) / len(spec["nodes"]))
            if samples:
                rows.append(
                    Figure(
                        "overhead",
                        label,
                        round(statistics.median(samples) * 1000, 1),
                        "ms/node",
                        f"median of {len(samples)}: (execution stopDate - startDate - tool time on the critical path) "
                        "/ nodes; util.echo nodes",
                    )
                )
    return rows


def makespan(quick: bool = False) -> list[Figure]:
    seeds = (1, 2) if quick else (1, 2, 3)
    ratios: list[float] = []
    details: list[str] = []
    with session() as runner:
        for seed in seeds:
            spec = layered_dag(14, seed=seed, width=4, durations=(0.1, 0.8), name=f"makespan-{seed}")
            graph_id = runner.create(spec)
            execution = runner.run(graph_id)
            if execution.status != "SUCCEEDED":
                details.append(f"seed {seed}: {execution.status} ({execution.why()})")
                continue
            path = critical_path(spec)
            ratios.append(execution.seconds / path)
            details.append(f"seed {seed}: {execution.seconds:.2f}s/{path:.2f}s")
    how = (
        "14 util.sleep nodes (0.1-0.8 s), random layers about 4 wide, edges may skip layers; "
        "execution wall time / longest path of sleep seconds; " + ", ".join(details)
    )
    if not ratios:
        return [Figure("makespan", "layered DAG makespan / critical path", "no run succeeded", "-", how)]
    return [
        Figure(
            "makespan", "layered DAG makespan / critical path (mean)", round(statistics.mean(ratios), 2), "ratio", how
        ),
        Figure(
            "makespan",
            "layered DAG makespan / critical path (max)",
            round(max(ratios), 2),
            "ratio",
            f"over {len(ratios)} seeds; 1.0 is ideal, local per-node overhead included",
        ),
    ]


def throughput(runs: int = 50) -> list[Figure]:
    spec = wide(6, max_concurrency=10, name="throughput")  # root, 4 middle, join
    with session() as runner:
        graph_id = runner.create(spec)
        barrier = threading.Barrier(runs)
        started: list[dict[str, Any]] = []
        errors: list[str] = []
        lock = threading.Lock()

        def start_one() -> None:
            with runner.cloud.client(api_key=runner.cloud.api_key, timeout=120) as api:
                barrier.wait()
                try:
                    run = runner.start(graph_id, {"n": 1}, api=api)
                except Exception as exc:
                    with lock:
                        errors.append(str(exc)[:300])
                    return
                with lock:
                    started.append(run)

        threads = [threading.Thread(target=start_one) for _ in range(runs)]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        finished: list[Execution | dict[str, Any]] = []
        outcomes = [runner.wait_execution(run["execution_arn"], timeout=300) for run in started]
        elapsed = time.perf_counter() - t0
        finished.extend(outcomes)
        ok = sum(1 for o in outcomes if o["status"] == "SUCCEEDED")
    how = (
        f"{runs} runs of a 6-node fan-out started at once by {runs} threads through the API; "
        f"first start to last execution end (DescribeExecution polled); {ok} SUCCEEDED"
        + (f", {len(errors)} starts failed (first: {errors[0]})" if errors else "")
    )
    return [
        Figure("throughput", f"runs completed per second, {runs} in flight", round(ok / elapsed, 2), "runs/s", how),
        Figure("throughput", f"wall time for {runs} concurrent runs", round(elapsed, 2), "s", how),
    ]


def figures(quick: bool = False) -> list[Figure]:
    return [*transitions(), *overhead(quick), *makespan(quick), *throughput()]
