"""Behaviour pinned through the API on the local stack: comparisons with the literal on the left, as Step
Functions evaluates them, and unbounded cycles wherever they are in the graph."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from functional_support import wait_for_run

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

LITERAL_LEFT = {
    "lt": "5 < input.x",
    "le": "5 <= input.x",
    "gt": "5 > input.x",
    "ge": "5 >= input.x",
    "s_lt": "'m' < input.s",
}


@pytest.fixture
def literal_left_graph(api: httpx.Client) -> str:
    """A root and one branch per comparison, each taken only when its condition holds."""
    spec = {
        "name": "literal-left",
        "nodes": [
            {"id": "root", "tool": "util.echo", "params": {}},
            *({"id": name, "tool": "util.echo", "params": {"took": name}} for name in LITERAL_LEFT),
        ],
        "edges": [{"from": "root", "to": name, "when": when} for name, when in LITERAL_LEFT.items()],
    }
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    return str(created.json()["graph_id"])


@pytest.mark.parametrize(
    ("x", "s", "taken"),
    [
        (4, "a", {"gt", "ge"}),
        (5, "m", {"le", "ge"}),
        (6, "z", {"lt", "le", "s_lt"}),
        (5.5, "n", {"lt", "le", "s_lt"}),
    ],
)
def test_a_literal_on_the_left_compares_as_written(
    api: httpx.Client, cloud: LocalCloud, literal_left_graph: str, x: float, s: str, taken: set[str]
) -> None:
    # WHEN the graph runs with x and s on either side of the literals
    started = api.post(f"/graphs/{literal_left_graph}/runs", json={"input": {"x": x, "s": s}})
    assert started.status_code == 202, started.text
    run = wait_for_run(api, started.json()["run_id"], cloud=cloud)

    # THEN exactly the branches whose comparison holds ran; the others were skipped
    assert run["status"] == "SUCCEEDED", run.get("error")
    ran = {name for name in LITERAL_LEFT if run["nodes"][name]["status"] == "SUCCEEDED"}
    assert ran == taken
    assert all(run["nodes"][name]["status"] == "SKIPPED" for name in set(LITERAL_LEFT) - taken)


def echo(node: str) -> dict[str, Any]:
    return {"id": node, "tool": "util.echo", "params": {}}


def test_an_unbounded_cycle_not_reachable_from_the_first_node_is_refused(api: httpx.Client) -> None:
    # WHEN a graph has a chain from its first node and, apart from it, a cycle no edge leads into
    spec = {
        "name": "island",
        "nodes": [echo("start"), echo("end"), echo("x"), echo("y")],
        "edges": [{"from": "start", "to": "end"}, {"from": "x", "to": "y"}, {"from": "y", "to": "x"}],
    }
    reply = api.post("/graphs", json=spec)

    # THEN 422 names the cycle and its nodes
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["details"] == [
        {
            "loc": "edges",
            "nodes": ["x", "y"],
            "message": "cycle x -> y -> x has no edge with max_iterations; mark its back-edge to bound the loop",
        }
    ]


def test_a_self_loop_on_a_later_node_is_refused(api: httpx.Client) -> None:
    # WHEN the third node of a chain has an edge to itself without max_iterations
    spec = {
        "name": "self-loop",
        "nodes": [echo("a"), echo("b"), echo("c")],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "c"}],
    }
    reply = api.post("/graphs", json=spec)

    # THEN 422 names the one-node cycle
    assert reply.status_code == 422, reply.text
    assert reply.json()["error"]["details"] == [
        {
            "loc": "edges",
            "nodes": ["c"],
            "message": "cycle c -> c has no edge with max_iterations; mark its back-edge to bound the loop",
        }
    ]
