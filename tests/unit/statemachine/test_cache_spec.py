"""``cache`` on a node: validated strictly, refused where it cannot hold, and compiled into the node's context."""

from __future__ import annotations

from typing import Any

import pytest

from statemachine.compiler import compile_graph
from statemachine.errors import SpecError
from statemachine.protocol import NodeContext
from statemachine.spec import MAX_CACHE_TTL_SECONDS
from statemachine.validation import published_version, validate

EXECUTOR = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-executor"


def spec_with(**node: Any) -> dict[str, Any]:
    return {"name": "t", "nodes": [{"id": "n", "tool": "util.echo", **node}]}


def details(raw: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(SpecError) as info:
        validate(raw)
    return info.value.details


@pytest.mark.parametrize("ttl", [1, 3600, MAX_CACHE_TTL_SECONDS])
def test_a_whole_number_of_seconds_up_to_the_bound_is_accepted(ttl: int) -> None:
    spec = validate(spec_with(cache={"ttl_seconds": ttl}))
    assert spec.nodes[0].cache is not None and spec.nodes[0].cache.ttl_seconds == ttl


@pytest.mark.parametrize(
    ("cache", "words"),
    [
        ({}, "Field required"),
        ({"ttl_seconds": 0}, "greater than or equal to 1"),
        ({"ttl_seconds": -5}, "greater than or equal to 1"),
        ({"ttl_seconds": MAX_CACHE_TTL_SECONDS + 1}, f"less than or equal to {MAX_CACHE_TTL_SECONDS}"),
        ({"ttl_seconds": "60"}, "valid integer"),
        ({"ttl_seconds": 60.0}, "valid integer"),
        ({"ttl_seconds": True}, "valid integer"),
        ({"ttl_seconds": None}, "valid integer"),
        ({"ttl_seconds": 60, "key": "mine"}, "Extra inputs are not permitted"),
        (60, "valid dictionary"),
    ],
)
def test_anything_else_is_refused_naming_the_field(cache: Any, words: str) -> None:
    found = details(spec_with(cache=cache))
    assert any(d["loc"].startswith("nodes[0].cache") and d.get("node") == "n" for d in found), found
    assert any(words in d["message"] for d in found), found


def test_human_tools_and_unpinned_lambdas_cannot_be_cached() -> None:
    raw = {
        "name": "t",
        "nodes": [
            {"id": "ask", "tool": "human.approval", "params": {"prompt": "ok?"}, "cache": {"ttl_seconds": 9}},
            {"id": "each", "tool": "util.echo", "foreach": "{{ input.xs }}", "cache": {"ttl_seconds": 9}},
            {"id": "latest", "tool": "lambda:stepgraph-user-f", "cache": {"ttl_seconds": 9}},
            {"id": "alias", "tool": "lambda:stepgraph-user-f:live", "cache": {"ttl_seconds": 9}},
            {"id": "pinned", "tool": "lambda:stepgraph-user-f:4", "cache": {"ttl_seconds": 9}},
        ],
    }
    found = {d["node"]: d["message"] for d in details(raw) if d["loc"].endswith(".cache")}
    assert set(found) == {"ask", "latest", "alias"}  # a foreach node's items are cached one by one
    assert "never cached" in found["ask"]
    assert "published version" in found["latest"] and "published version" in found["alias"]


@pytest.mark.parametrize(
    ("target", "version"),
    [
        ("f", None),
        ("f:3", "3"),
        ("f:$LATEST", None),
        ("f:prod", None),
        ("123456789012:function:f:12", "12"),
        ("123456789012:function:f", None),
        ("arn:aws:lambda:us-east-1:123456789012:function:stepgraph-tool-acme_x:5", "5"),
        ("arn:aws:lambda:us-east-1:123456789012:function:f", None),
        ("arn:aws:lambda:us-east-1:123456789012:function:f:live", None),
    ],
)
def test_published_version_reads_the_qualifier_of_every_function_name_form(target: str, version: str | None) -> None:
    assert published_version(target) == version


def test_the_ttl_reaches_the_executor_in_the_nodes_context() -> None:
    spec = validate(
        {
            "name": "t",
            "nodes": [
                {"id": "a", "tool": "util.echo", "cache": {"ttl_seconds": 30}},
                {"id": "b", "tool": "util.echo"},
            ],
            "edges": [{"from": "a", "to": "b"}],
        }
    )
    states = compile_graph(spec, executor_arn=EXECUTOR)["States"]
    contexts = {n: NodeContext.from_json(states[n]["Parameters"]["Payload"]["ctx"]) for n in ("a", "b")}
    assert contexts["a"].cache_ttl == 30
    assert contexts["b"].cache_ttl is None
    assert "cache_ttl" not in states["b"]["Parameters"]["Payload"]["ctx"]  # uncached nodes' definitions unchanged
