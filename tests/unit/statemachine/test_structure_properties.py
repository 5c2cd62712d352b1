"""Properties of the compiled structure on many random graphs: dependencies hold, the cap holds, and
series-parallel graphs run in exactly their critical path."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from asl_shape import compiled


def random_dag(seed: int, n: int, cap: int = 1000) -> tuple[dict[str, Any], dict[str, float]]:
    rng = random.Random(seed)
    ids = [f"n{i}" for i in range(n)]
    edges = []
    for j in range(1, n):
        for i in rng.sample(range(j), k=min(j, rng.randint(0, 3))):
            edges.append({"from": ids[i], "to": ids[j]})
    seconds = {node: rng.uniform(0.1, 1.0) for node in ids}
    spec = {"nodes": [{"id": i, "tool": "util.echo"} for i in ids], "edges": edges, "options": {"max_concurrency": cap}}
    return spec, seconds


def simulate(
    scope: dict[str, Any], seconds: dict[str, float], now: float, spans: dict[str, tuple[float, float]]
) -> float:
    """Run a scope without Choices: Tasks take their node's seconds, a Parallel ends with its slowest branch."""
    name = scope["StartAt"]
    while name is not None:
        state = scope["States"][name]
        if state["Type"] == "Task":
            node = state["Parameters"]["Payload"]["node"]
            spans[node] = (now, now + seconds[node])
            now += seconds[node]
        elif state["Type"] == "Parallel":
            now = max(simulate(b, seconds, now, spans) for b in state["Branches"])
        else:
            assert state["Type"] == "Choice", state
        name = state.get("Next")
    return now


def width(scope: dict[str, Any]) -> int:
    """Most Tasks that can run at once in a scope."""
    widest = 0
    for state in scope["States"].values():
        if state["Type"] == "Task":
            widest = max(widest, 1)
        elif state["Type"] == "Parallel":
            widest = max(widest, sum(width(b) for b in state["Branches"]))
    return widest


@pytest.mark.parametrize("seed", range(40))
def test_every_node_starts_after_all_its_parents_end(seed: int) -> None:
    spec, seconds = random_dag(seed, n=3 + seed % 25)
    spans: dict[str, tuple[float, float]] = {}
    simulate(compiled(spec), seconds, 0.0, spans)
    assert set(spans) == set(seconds)
    for edge in spec["edges"]:
        assert spans[edge["from"]][1] <= spans[edge["to"]][0] + 1e-9, edge


@pytest.mark.parametrize("seed", range(20))
def test_max_concurrency_bounds_the_width(seed: int) -> None:
    cap = 1 + seed % 4
    spec, _ = random_dag(seed, n=20, cap=cap)
    assert width(compiled(spec)) <= cap


Parts = tuple[list[str], list[str], list[dict[str, str]]]


def series_parallel(rng: random.Random, depth: int, counter: list[int]) -> Parts:
    """A random series-parallel graph: (sources, sinks, edges); nodes are numbered through ``counter``."""
    if depth == 0 or rng.random() < 0.2:
        counter[0] += 1
        node = f"s{counter[0]}"
        return [node], [node], []
    parts = [series_parallel(rng, depth - 1, counter) for _ in range(rng.randint(2, 3))]
    if rng.random() < 0.5:  # parallel composition
        return ([s for p in parts for s in p[0]], [t for p in parts for t in p[1]], [e for p in parts for e in p[2]])
    edges = [e for p in parts for e in p[2]]
    for left, right in itertools.pairwise(parts):  # series: every sink before every source
        edges.extend({"from": t, "to": s} for t in left[1] for s in right[0])
    return parts[0][0], parts[-1][1], edges


@pytest.mark.parametrize("seed", range(30))
def test_series_parallel_graphs_take_exactly_their_critical_path(seed: int) -> None:
    rng = random.Random(seed)
    counter = [0]
    _, _, edges = series_parallel(rng, 4, counter)
    ids = [f"s{i}" for i in range(1, counter[0] + 1)]
    seconds = {node: rng.uniform(0.1, 1.0) for node in ids}
    spec = {
        "nodes": [{"id": i, "tool": "util.echo"} for i in ids],
        "edges": edges,
        "options": {"max_concurrency": 1000},
    }
    spans: dict[str, tuple[float, float]] = {}
    makespan = simulate(compiled(spec), seconds, 0.0, spans)
    finish: dict[str, float] = {}
    for node in ids:  # ids are numbered in an order where parents come first
        parents = [e["from"] for e in edges if e["to"] == node]
        finish[node] = seconds[node] + max((finish[p] for p in parents), default=0.0)
    assert makespan == pytest.approx(max(finish.values()))
