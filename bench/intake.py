"""Intake figures: how long the API takes to read and check the worst bodies a caller can send.

Each body is built up to the 256 KiB request limit from one pathological ingredient (issue 11 point 1)
and goes through what ``POST /graphs/validate`` does before answering: strict JSON parsing with the
intake limits, validation, and compiling when it is valid. No AWS involved; the slowest of 3 runs is shown.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.common import Figure

SECTION = "intake"
LIMIT = 256 * 1024
RUNS = 3


def _fill(make: Any) -> str:
    """The largest body ``make(n)`` builds within the request limit (a binary search on ``n``)."""
    low, high = 1, 1
    while len(make(high)) <= LIMIT:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if len(make(mid)) <= LIMIT else (low, mid)
    return str(make(low))


def _spec(nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"name": "worst", "nodes": nodes, "edges": edges or []})


def _chain_with_conditions(n: int) -> str:
    condition = " or ".join(f"input.v{i} == {i}" for i in range(64))
    nodes = [{"id": f"n{i}", "tool": "util.echo", "params": {}} for i in range(n + 1)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}", "when": condition} for i in range(n)]
    return _spec(nodes, edges)


def _many_references(n: int) -> str:
    params = {f"p{i}": "{{ input.a.b[0].c }} and {{ state.x }}" for i in range(n)}
    return _spec([{"id": "a", "tool": "util.echo", "params": params}])


def _deep_and_wide(n: int) -> str:
    value: Any = ["x" * 10] * n
    for level in range(58):
        value = [value] if level % 2 else {"k": value}
    return _spec([{"id": "a", "tool": "util.echo", "params": {"v": value}}])


BODIES = {
    "unclosed '{{' in one param": lambda n: _spec([{"id": "a", "tool": "util.echo", "params": {"x": "{{" * n}}]),
    "conditions of 64 terms on a chain": _chain_with_conditions,
    "references in params": _many_references,
    "JSON 64 deep, wide at the bottom": _deep_and_wide,
    "nested 'not' over the length limit": lambda n: _spec(
        [{"id": "a", "tool": "util.echo"}, {"id": "b", "tool": "util.echo"}],
        [{"from": "a", "to": "b", "when": "not " * n + "input.x"}],
    ),
}


def _check(body: str) -> str:
    """What the API does with the body before answering; the outcome in a word."""
    from functions.api.graphs_service import compile_definition, validate
    from statemachine import jsonlimits
    from statemachine.errors import JsonInputError, SpecError

    try:
        spec = validate(jsonlimits.loads(body))
    except (SpecError, JsonInputError) as exc:
        return f"refused ({type(exc).__name__})"
    compile_definition(spec, "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor")
    return "valid, compiled"


def figures(quick: bool = False) -> list[Figure]:
    _check(_spec([{"id": "warm", "tool": "util.echo"}]))  # imports and the tool registry, once
    rows: list[Figure] = []
    for name, make in BODIES.items():
        body = _fill(make)
        times = []
        outcome = ""
        for _ in range(1 if quick else RUNS):
            started = time.perf_counter()
            outcome = _check(body)
            times.append(time.perf_counter() - started)
        how = f"{len(body):,}-byte body; parse, validate (and compile when valid): {outcome}; slowest of {len(times)}"
        rows.append(Figure(SECTION, f"worst body: {name}", round(max(times) * 1000, 1), "ms", how))
    return rows
