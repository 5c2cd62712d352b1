"""What the compiled structure itself costs, measured on the definitions (pure Python, no AWS, no moto).

- Makespan of the compiled state machine / the graph's critical path, for random layered DAGs and a diamond
  lattice whose nodes take unequal times: the definition is walked with each Task taking its node's
  seconds and every other state none (a Parallel ends with its slowest branch). 1.0 means no node waits for
  anything but its own ancestors; the level-by-level barrier schedule is printed beside it for comparison.
- Helper states per node and state transitions per executed node, for one graph of each construct, counted
  on the definition's path (Task, Choice, Parallel, Map, Pass, Succeed each one transition when entered).
"""

from __future__ import annotations

import random
import statistics
from typing import Any

from bench.common import Figure, critical_path, lattice, layered_dag

EXECUTOR_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor"
SECTION = "compiled structure"


def _compile(spec: dict[str, Any]) -> dict[str, Any]:
    from statemachine.compiler import compile_graph
    from statemachine.validation import validate

    return compile_graph(validate(spec), executor_arn=EXECUTOR_ARN)


def _walk(
    scope: dict[str, Any], seconds: dict[str, float], start: float, runs: list[str] | None = None
) -> tuple[float, int]:
    """(finish time, states entered) of a scope, taking every condition as true and loops to their bound.

    ``runs`` collects the node of every Task that ran a tool (a loop's nodes once per iteration).
    """
    name: str | None = scope["StartAt"]
    now, entered = start, 0
    taken: dict[str, int] = {}
    while name is not None:
        state = scope["States"][name]
        entered += 1
        kind = state["Type"]
        if kind == "Task":
            payload = state["Parameters"]["Payload"]
            now += seconds.get(payload.get("node", ""), 0.0)
            if runs is not None and payload.get("mode") in ("run", "collect"):
                runs.append(payload["node"])
        elif kind == "Parallel":
            ends = [_walk(branch, seconds, now, runs) for branch in state["Branches"]]
            now = max(end for end, _ in ends)
            entered += sum(count for _, count in ends)
        elif kind == "Choice":
            rule = state["Choices"][0]
            bound = next(
                (
                    r["NumericLessThan"]
                    for r in rule.get("And", [])
                    if "NumericLessThan" in r
                    if str(r.get("Variable", "")).startswith("$.loops")
                ),
                None,
            )
            taken[name] = taken.get(name, 0) + 1
            # a loop's back-edge is taken until its bound (the head ran ``bound`` times); other rules hold
            name = rule["Next"] if bound is None or taken[name] < bound else state["Default"]
            continue
        name = state.get("Next")
    return now, entered


def _levels(spec: dict[str, Any], seconds: dict[str, float]) -> float:
    """Makespan of a level-by-level barrier schedule: each depth level waits for the previous one."""
    parents: dict[str, list[str]] = {n["id"]: [] for n in spec["nodes"]}
    for edge in spec["edges"]:
        parents[edge["to"]].append(edge["from"])
    depth: dict[str, int] = {}

    def level(node: str) -> int:
        if node not in depth:
            depth[node] = 1 + max((level(p) for p in parents[node]), default=-1)
        return depth[node]

    worst: dict[int, float] = {}
    for node in parents:
        worst[level(node)] = max(worst.get(level(node), 0.0), seconds[node])
    return sum(worst.values())


def _sleepy(spec: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    nodes = [
        {"id": n["id"], "tool": "util.sleep", "params": {"seconds": round(rng.uniform(0.1, 0.8), 2)}}
        for n in spec["nodes"]
    ]
    return {**spec, "nodes": nodes}


def makespan_rows(quick: bool = False) -> list[Figure]:
    rows: list[Figure] = []
    seeds = range(1, 4 if quick else 11)
    cases: list[tuple[str, Any]] = [
        (f"layered DAG of {n}", lambda seed, n=n: layered_dag(n, seed=seed, durations=(0.1, 0.8)))
        for n in (20, 100, 500)
    ]
    cases.append(("diamond lattice 1-6-1 (36 nodes)", lambda seed: _sleepy(lattice(6), seed)))
    capped = {"max_concurrency": 10}
    cases.append(
        (
            "layered DAG of 100, max_concurrency 10",
            lambda seed: {**layered_dag(100, seed=seed, durations=(0.1, 0.8)), "options": capped},
        )
    )
    for label, make in cases:
        ratios, barrier = [], []
        for seed in seeds:
            spec = make(seed)
            seconds = {n["id"]: float(n["params"]["seconds"]) for n in spec["nodes"]}
            path = critical_path(spec)
            end, _ = _walk(_compile(spec), seconds, 0.0)
            ratios.append(end / path)
            barrier.append(_levels(spec, seconds) / path)
        how = (
            f"{len(ratios)} seeds, util.sleep 0.1-0.8 s per node; compiled definition walked (Parallel = "
            f"slowest branch) / longest path; level-barrier schedule: mean {statistics.mean(barrier):.2f}, "
            f"max {max(barrier):.2f}"
        )
        rows.append(
            Figure(
                SECTION, f"{label}: makespan / critical path (mean)", round(statistics.mean(ratios), 3), "ratio", how
            )
        )
        rows.append(
            Figure(
                SECTION,
                f"{label}: makespan / critical path (max)",
                round(max(ratios), 3),
                "ratio",
                "1.0 = every node starts when its ancestors are done",
            )
        )
    return rows


def _echo(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.echo", **fields}


def construct_rows() -> list[Figure]:
    chain: dict[str, Any] = {
        "name": "chain",
        "nodes": [_echo(f"n{i}") for i in range(10)],
        "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(9)],
    }
    fan: dict[str, Any] = {
        "name": "fan",
        "nodes": [_echo("root"), *[_echo(f"m{i}") for i in range(8)], _echo("join")],
        "edges": [{"from": "root", "to": f"m{i}"} for i in range(8)]
        + [{"from": f"m{i}", "to": "join"} for i in range(8)],
    }
    cond: dict[str, Any] = {
        "name": "cond",
        "nodes": [_echo("a"), _echo("b"), _echo("c")],
        "edges": [{"from": "a", "to": "b", "when": "a.ok == true"}, {"from": "b", "to": "c"}],
    }
    loop: dict[str, Any] = {
        "name": "loop",
        "nodes": [_echo("h"), _echo("t"), _echo("after")],
        "edges": [
            {"from": "h", "to": "t"},
            {"from": "t", "to": "h", "max_iterations": 3},
            {"from": "t", "to": "after"},
        ],
    }
    rows: list[Figure] = []
    cases: tuple[tuple[str, dict[str, Any]], ...] = (
        ("chain of 10", chain),
        ("fan-out root + 8 + join", fan),
        ("condition a -> b (when) -> c, all true", cond),
        ("loop h -> t (back-edge bound 3) -> after", loop),
    )
    for label, spec in cases:
        definition = _compile(spec)
        count = _count_states(definition)
        nodes = len(spec["nodes"])
        rows.append(
            Figure(
                SECTION,
                f"{label}: states per node",
                round(count / nodes, 2),
                "states/node",
                f"{count} states for {nodes} nodes (Tasks, helper Choices/Parallels/ends)",
            )
        )
        runs: list[str] = []
        _, entered = _walk(definition, {}, 0.0, runs)
        rows.append(
            Figure(
                SECTION,
                f"{label}: transitions per executed node",
                round(entered / len(runs), 2),
                "transitions/node",
                f"{entered} states entered for {len(runs)} node runs, walking the "
                "definition with every condition true and loops to their bound",
            )
        )
    return rows


def _count_states(scope: dict[str, Any]) -> int:
    total = 0
    for state in scope["States"].values():
        total += 1
        for branch in state.get("Branches", []):
            total += _count_states(branch)
        if "ItemProcessor" in state:
            total += _count_states(state["ItemProcessor"])
    return total


def figures(quick: bool = False) -> list[Figure]:
    return [*makespan_rows(quick), *construct_rows()]


if __name__ == "__main__":
    for row in figures():
        print(f"{row.name:70} {row.value!s:>8} {row.unit:18} {row.how}")
