"""Random conditional DAGs executed in moto (executor stub) agree with the skip rule of DESIGN.md: a node runs
when at least one incoming edge comes from a node that ran and its condition holds; roots always run."""

from __future__ import annotations

import random
from typing import Any

import pytest
from asl_shape import compiled
from moto_run import EXECUTOR, Stub, moto_sfn

from statemachine.payload import initial_document
from statemachine.validation import validate


def random_conditional_dag(seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(seed)
    n = rng.randint(4, 12)
    ids = [f"n{i}" for i in range(n)]
    edges = []
    for j in range(1, n):
        for i in rng.sample(range(j), k=min(j, rng.randint(1, 2))):
            edge: dict[str, Any] = {"from": ids[i], "to": ids[j]}
            if rng.random() < 0.4:
                edge["when"] = rng.choice([f"input.f{j} == true", f"{ids[i]}.v > 1", f"not exists(input.f{i})"])
            edges.append(edge)
    nodes = [{"id": node, "tool": "util.echo", "params": {"v": rng.randint(0, 3)}} for node in ids]
    flags = {f"f{k}": rng.random() < 0.5 for k in range(n) if rng.random() < 0.7}
    return {"nodes": nodes, "edges": edges, "options": {"max_concurrency": 4}}, flags


def expected_runs(spec: dict[str, Any], flags: dict[str, Any]) -> set[str]:
    values = {n["id"]: n["params"]["v"] for n in spec["nodes"]}
    ran: set[str] = set()
    for node in values:  # ids are in topological order
        incoming = [e for e in spec["edges"] if e["to"] == node]
        if not incoming or any(e["from"] in ran and holds(e.get("when"), e["from"], values, flags) for e in incoming):
            ran.add(node)
    return ran


def holds(when: str | None, source: str, values: dict[str, int], flags: dict[str, Any]) -> bool:
    if when is None:
        return True
    if when.startswith("input."):
        return flags.get(when.split(".")[1].split(" ")[0]) is True
    if when.startswith("not exists"):
        return when[len("not exists(input.") : -1] not in flags
    return values[source] > 1


@pytest.mark.parametrize("seed", range(6))
def test_compiled_skips_match_the_reference_rule(seed: int) -> None:
    spec, flags = random_conditional_dag(seed)
    stub = Stub()
    with moto_sfn({EXECUTOR: stub}) as run:
        status, doc = run(compiled(spec), initial_document(validate({"name": "t", **spec}), {}, flags))
    assert status == "SUCCEEDED", doc
    assert set(doc["results"]) == expected_runs(spec, flags)
    assert sorted(node for node, _ in stub.calls) == sorted(expected_runs(spec, flags))
