"""AWS's own validator (the ASL language service behind the AWS Toolkit and Workflow Studio) finds nothing wrong
in any definition the compiler emits: the examples, the fuzz generator's accepted specs, the bench shapes and
a 500-node graph, all checked in one ``node`` call, and by the local cloud's own definition rules
(``local.strict.definition_diagnostics``: size, reserved error names, transition targets)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from bench.common import chain, lattice, layered_dag, wide
from bench.sizes import SIZES, shapes
from local.asl_service import diagnostics
from local.strict import definition_diagnostics
from statemachine.compiler import compile_graph, definition_json
from statemachine.errors import SpecError
from tests.unit.fuzz.specs import specs

validation = pytest.importorskip("statemachine.validation")
registry = pytest.importorskip("functions.executor.tools.registry")

EXECUTOR_ARN = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FUZZ_SPECS = 150


def compiled(raw: dict[str, Any]) -> dict[str, Any]:
    return compile_graph(validation.validate(raw, registry), executor_arn=EXECUTOR_ARN, comment="stepgraph: test")


def example_definitions() -> dict[str, dict[str, Any]]:
    paths = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json"))
    assert paths, "no examples found"
    return {f"example {p.stem}": compiled(json.loads(p.read_text())) for p in paths}


def bench_definitions() -> dict[str, dict[str, Any]]:
    found = {f"bench {shape} {n}": compiled(raw) for n in SIZES for shape, raw in shapes(n).items()}
    found["bench lattice 10"] = compiled(lattice(10))
    found["bench wide 40 unbounded"] = compiled(wide(40))
    found["chain 500"] = compiled(chain(500))
    found["layered 500"] = compiled(layered_dag(500, seed=1))
    found["constructs"] = compiled(CONSTRUCTS)
    return found


# Every construct at once: optional foreach and lambda: nodes reading fields, a condition, a bounded loop,
# timeouts and retries (the shapes AWS used to refuse or fail: issue 10), people's steps (.waitForTaskToken).
CONSTRUCTS: dict[str, Any] = {
    "name": "constructs",
    "nodes": [
        {"id": "root", "tool": "util.echo", "params": {"items": [1, 2], "v": "{{ input.v }}"}},
        *(
            {
                "id": f"each{i}",
                "tool": "util.echo",
                "params": {"x": "{{ item }}"},
                "foreach": "{{ input.items }}",
                "optional": True,
                "max_concurrency": 100,
            }
            for i in range(5)
        ),
        *(
            {
                "id": f"mine{i}",
                "tool": "lambda:stepgraph-user-fn",
                "params": {"v": "{{ input.missing }}"},
                "optional": True,
                "timeout_seconds": 5,
                "retry": {"max_attempts": 2},
            }
            for i in range(5)
        ),
        *(
            {
                "id": f"kept{i}",
                "tool": "lambda:stepgraph-user-fn:7",
                "params": {"v": "{{ root.v }}"} if i else {"v": 1},
                "cache": {"ttl_seconds": 60},
                "optional": bool(i),
            }
            for i in range(2)
        ),
        {"id": "ask", "tool": "human.approval", "params": {"prompt": "go on with {{ root.v }}?"}, "optional": True},
        {
            "id": "answer",
            "tool": "human.input",
            "params": {"prompt": "how many?", "schema": {"type": "integer"}},
            "timeout_seconds": 3600,
        },
        {"id": "head", "tool": "util.echo"},
        {"id": "tail", "tool": "util.echo"},
        {"id": "after", "tool": "util.echo", "params": {"r": "{{ root.v }}"}, "cache": {"ttl_seconds": 60}},
        {
            "id": "mid",
            "tool": "lambda:stepgraph-user-fn:7",
            "params": {"r": "{{ after.r }}"},
            "cache": {"ttl_seconds": 9},
        },
        {"id": "last", "tool": "lambda:stepgraph-user-fn:7", "cache": {"ttl_seconds": 9}},
    ],
    "edges": [
        *({"from": "root", "to": f"each{i}"} for i in range(5)),
        *({"from": "root", "to": f"mine{i}"} for i in range(5)),
        *({"from": "root", "to": f"kept{i}"} for i in range(2)),
        {"from": "after", "to": "mid"},
        {"from": "mid", "to": "last"},
        {"from": "root", "to": "ask"},
        {"from": "ask", "to": "answer", "when": "ask.approved == True"},
        {"from": "root", "to": "head", "when": "root.v == 1"},
        {"from": "head", "to": "tail"},
        {"from": "tail", "to": "head", "max_iterations": 3},
        {"from": "tail", "to": "after"},
    ],
}


def fuzz_definitions() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    @settings(
        max_examples=FUZZ_SPECS, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(raw=specs())
    def collect(raw: dict[str, Any]) -> None:
        try:
            definition = compiled(raw)
        except SpecError:
            return
        digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:12]
        found[f"fuzz {digest}"] = definition

    collect()
    return found


def test_every_compiled_definition_passes_awss_asl_language_service() -> None:
    # GIVEN every definition the compiler emits for the examples, bench shapes, a 500-node graph and fuzz specs
    definitions = {**example_definitions(), **bench_definitions(), **fuzz_definitions()}
    assert sum(name.startswith("fuzz ") for name in definitions) >= 20, "too few accepted fuzz specs"
    assert any(len(d["States"]) >= 500 for d in definitions.values()) or any("500" in name for name in definitions), (
        "no 500-node graph"
    )
    # WHEN AWS's language service validates them
    report = diagnostics(definitions)
    # THEN it reports nothing: no error, no warning
    assert set(report) == set(definitions)
    found = {name: problems for name, problems in report.items() if problems}
    assert found == {}, json.dumps(found, indent=1)[:4000]
    # AND none breaks what the language service does not check: the 1 MiB limit, States.* Fail names
    refused = {
        name: [p.message for p in problems]
        for name, d in definitions.items()
        if (problems := definition_diagnostics(definition_json(d)))
    }
    assert refused == {}


def test_the_language_service_reports_what_aws_would_refuse() -> None:
    # GIVEN a definition with a transition to a state that does not exist, and an unknown field
    broken = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}, "B": {"Type": "Pass", "Ends": True}}}
    # WHEN it is validated
    report = diagnostics({"broken": broken, "ok": {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}})
    # THEN each problem is an ERROR diagnostic with its line, and the valid one has none
    assert report["ok"] == []
    messages = " | ".join(d["message"] for d in report["broken"])
    assert "Next" in messages
    assert all(d["severity"] == "ERROR" and d["line"] >= 1 for d in report["broken"])
