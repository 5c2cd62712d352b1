"""The compiler stays inside what AWS accepts: definition size, params stored once, catchable missing fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asl_shape import compiled

from statemachine.compiler import definition_json

MIB = 1_048_576


def big_spec(kind: str, count: int = 170) -> dict[str, Any]:
    """``count`` optional nodes in a chain, each with about 1.3 KB of params (a spec near the 256 KiB limit)."""
    nodes = []
    for i in range(count):
        node: dict[str, Any] = {
            "id": f"node{i:03d}",
            "tool": "util.echo",
            "params": {"text": "lorem ipsum " * 108, "v": "{{ input.x }}"},
            "optional": True,
        }
        if kind == "foreach":
            node |= {"foreach": "{{ input.items }}", "params": {**node["params"], "v": "{{ item }}"}}
        if kind == "lambda":
            node["tool"] = "lambda:my-function"
        nodes.append(node)
    edges = [{"from": f"node{i:03d}", "to": f"node{i + 1:03d}"} for i in range(count - 1)]
    return {"nodes": nodes, "edges": edges}


@pytest.mark.parametrize("kind", ["foreach", "lambda", "plain"])
def test_a_spec_near_the_body_limit_compiles_well_under_the_definition_limit(kind: str) -> None:
    # GIVEN 170 optional nodes whose spec is close to the 256 KiB body limit
    spec = big_spec(kind)
    assert len(json.dumps({"name": "t", **spec})) > 240_000
    # WHEN compiled
    size = len(definition_json(compiled(spec)).encode())
    # THEN the definition stays under AWS's 1 MiB (the params are stored once per node, not per helper); a
    # foreach is four Tasks and a Map (plan, batch, collect, failure), about 1 KB more per node than the rest
    assert size < (0.95 if kind == "foreach" else 0.8) * MIB, size


def test_only_the_step_that_runs_the_tool_carries_the_params() -> None:
    # GIVEN an optional foreach node with distinctive params
    spec = {"nodes": [{"id": "each", "tool": "util.echo", "foreach": "{{ input.items }}", "optional": True,
                       "params": {"marker": "find-me-once", "v": "{{ item }}"}}]}  # fmt: skip
    text = definition_json(compiled(spec))
    # THEN the params appear once: in the batch Task, not in plan, collect or the failure recorder
    assert text.count("find-me-once") == 1


def test_a_lambda_node_checks_its_referenced_fields_before_calling_the_function() -> None:
    # GIVEN a lambda: node reading two run input fields (one twice)
    spec = {
        "nodes": [
            {
                "id": "mine",
                "tool": "lambda:my-fn",
                "params": {"a": "{{ input.a }}", "b": "x-{{ input.b[0] }}", "c": ["{{ input.a }}"]},
            }
        ]
    }
    definition = compiled(spec)
    states = definition["States"]
    # THEN the machine starts (past the Choice skipping a node a resumed run had done) with a Choice sending a
    # run without them to a Pass that fails the node with stepgraph.ReferenceError (which a Catch takes: a
    # JSONPath on a missing field is States.Runtime on AWS)
    assert definition["StartAt"] == "mine.resumed"
    assert states["mine.resumed"]["Default"] == "mine.check"
    check = states["mine.check"]
    assert check["Default"] == "mine"
    assert check["Choices"] == [
        {
            "Or": [
                {"Not": {"Variable": "$.input.a", "IsPresent": True}},
                {"Not": {"Variable": "$.input.b[0]", "IsPresent": True}},
            ],
            "Next": "mine.missing",
        }
    ]
    missing = states["mine.missing"]
    assert missing["Result"]["Error"] == "stepgraph.ReferenceError"
    assert "input.a, input.b[0]" in missing["Result"]["Cause"]
    assert (missing["ResultPath"], missing["Next"]) == ("$.failure", "mine.failed")
