"""Validation: every problem is reported with the node, edge, field or position a user needs to fix it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, HttpUrl

from statemachine.errors import LimitError, SpecError
from statemachine.validation import validate


class FetchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    retries: int = 0


class Catalog:
    """A tool catalog as the registry provides it."""

    def names(self) -> list[str]:
        return ["http.get", "util.echo"]

    def params_model(self, name: str) -> type[BaseModel] | None:
        return FetchParams if name == "http.get" else None


def errors(spec: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(SpecError) as info:
        validate({"name": "t", **spec}, Catalog())
    return info.value.details


def echo(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "tool": "util.echo", **fields}


def test_a_valid_spec_comes_back_as_a_model() -> None:
    spec = validate(
        {
            "name": "ok",
            "nodes": [
                {"id": "fetch", "tool": "http.get", "params": {"url": "{{ input.url }}", "retries": 2}},
                echo("show", params={"v": "{{ fetch.json.items[0] }}"}),
            ],
            "edges": [{"from": "fetch", "to": "show"}],
        },
        Catalog(),
    )
    assert [n.id for n in spec.nodes] == ["fetch", "show"]


def test_empty_graph() -> None:
    assert errors({"nodes": []}) == [{"loc": "nodes", "message": "a graph needs at least one node"}]


def test_duplicate_ids_and_reserved_ids() -> None:
    found = errors({"nodes": [echo("a"), echo("a"), echo("input")]})
    assert found == [
        {"loc": "nodes[1].id", "node": "a", "message": "duplicate node id 'a' (first at nodes[0])"},
        {"loc": "nodes[2].id", "node": "input", "message": "'input' is reserved for references; choose another id"},
    ]


def test_shape_errors_name_the_field() -> None:
    found = errors({"nodes": [{"id": "9bad", "tool": "util.echo"}, echo("b", retry={"max_attempts": -1})]})
    assert [(d["loc"], d.get("node")) for d in found] == [("nodes[0].id", "9bad"), ("nodes[1].retry.max_attempts", "b")]


def test_unknown_tool_lists_the_known_ones() -> None:
    assert errors({"nodes": [{"id": "x", "tool": "nope"}]}) == [
        {"loc": "nodes[0].tool", "node": "x", "message": "unknown tool 'nope'; known tools: http.get, util.echo"}
    ]


def test_params_are_checked_against_the_tool_schema_except_whole_references() -> None:
    found = errors(
        {
            "nodes": [
                {"id": "f", "tool": "http.get", "params": {"url": "not a url", "retries": "{{ input.n }}", "extra": 1}},
                {"id": "g", "tool": "http.get", "params": {"retries": 1}},
            ]
        }
    )
    assert [(d["loc"], d["node"]) for d in found] == [
        ("nodes[0].params.url", "f"),
        ("nodes[0].params.extra", "f"),
        ("nodes[1].params.url", "g"),
    ]
    assert found[2]["message"] == "http.get: Field required"


def test_interpolated_strings_are_still_type_checked() -> None:
    found = errors({"nodes": [{"id": "f", "tool": "http.get", "params": {"url": "u", "retries": "n={{ input.n }}"}}]})
    assert "nodes[0].params.retries" in [d["loc"] for d in found]


def test_edges_to_unknown_nodes() -> None:
    assert errors({"nodes": [echo("a")], "edges": [{"from": "a", "to": "zz"}]}) == [
        {"loc": "edges[0].to", "edge": "a->zz", "message": "edge a->zz: unknown node 'zz'"}
    ]


def test_references_must_point_upstream() -> None:
    found = errors(
        {
            "nodes": [echo("a", params={"v": "{{ b.x }}"}), echo("b"), echo("c", params={"v": "{{ q }}"})],
            "edges": [{"from": "a", "to": "b"}],
        }
    )
    assert found == [
        {
            "loc": "nodes[0].params.v",
            "node": "a",
            "message": "{{ b.x }}: node 'b' is not upstream of 'a' (add an edge b -> a or a path to it)",
        },
        {"loc": "nodes[2].params.v", "node": "c", "message": "{{ q }}: unknown node 'q'"},
    ]


def test_malformed_references() -> None:
    found = errors({"nodes": [echo("a", params={"v": ["ok", "{{ a..b }}"]})]})
    assert found[0]["loc"] == "nodes[0].params.v[1]"
    assert "malformed reference at offset 0" in found[0]["message"]


def test_item_only_inside_foreach_and_foreach_needs_one_reference() -> None:
    found = errors({"nodes": [echo("a", params={"v": "{{ item }}"}), echo("b", foreach="items: {{ input.x }}")]})
    assert [d["loc"] for d in found] == ["nodes[0].params.v", "nodes[1].foreach"]


def test_condition_grammar_errors_carry_their_position() -> None:
    found = errors({"nodes": [echo("a"), echo("b")], "edges": [{"from": "a", "to": "b", "when": "a.x > len(a)"}]})
    assert found == [
        {
            "loc": "edges[0].when",
            "edge": "a->b",
            "position": {"line": 1, "col": 7},
            "message": "condition 'a.x > len(a)': function calls are not allowed (only exists(path) as a condition)",
        }
    ]


def test_conditions_read_only_the_source_and_its_upstream() -> None:
    found = errors(
        {
            "nodes": [echo("a"), echo("b"), echo("c")],
            "edges": [{"from": "a", "to": "b", "when": "c.ok == 1"}, {"from": "b", "to": "c"}],
        }
    )
    assert found[0]["message"] == "condition reads 'c.ok', but 'c' is not 'a' or upstream of it"


def test_unbounded_cycle_names_its_nodes() -> None:
    found = errors(
        {
            "nodes": [echo("a"), echo("b"), echo("c")],
            "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b"}],
        }
    )
    assert found == [
        {
            "loc": "edges",
            "nodes": ["b", "c"],
            "message": "cycle b -> c -> b has no edge with max_iterations; mark its back-edge to bound the loop",
        }
    ]


def test_max_iterations_must_close_a_loop_entered_at_its_head() -> None:
    found = errors(
        {
            "nodes": [echo("a"), echo("b"), echo("c"), echo("x")],
            "edges": [
                {"from": "a", "to": "b"},
                {"from": "b", "to": "c"},
                {"from": "c", "to": "a", "max_iterations": 2},
                {"from": "x", "to": "b"},
                {"from": "a", "to": "x", "max_iterations": 2},
            ],
        }
    )
    messages = [d["message"] for d in found]
    assert any("a loop body may only be entered at its head" in m for m in messages)
    assert any("the edge closes no cycle" in m for m in messages)


def test_edge_map_conflicting_with_params() -> None:
    found = errors(
        {"nodes": [echo("a"), echo("b", params={"v": 1})], "edges": [{"from": "a", "to": "b", "map": {"v": "x"}}]}
    )
    assert found[0]["loc"] == "edges[0].map.v"


def test_node_and_edge_count_limits_are_422_naming_the_limit() -> None:
    with pytest.raises(LimitError) as info:
        validate({"name": "big", "nodes": [echo(f"n{i}") for i in range(501)]})
    assert info.value.status == 422
    assert "limit is 500" in info.value.message
    with pytest.raises(LimitError, match="limit is 3"):
        validate({"name": "e", "nodes": [echo("a")], "edges": [{"from": "a", "to": "a"}] * 4}, max_edges=3)


def test_not_an_object() -> None:
    with pytest.raises(SpecError, match="must be a JSON object"):
        validate([1, 2])


def test_foreach_update_state_needs_a_mapping() -> None:
    found = errors(
        {"nodes": [echo("each", foreach="{{ input.items }}", params={"v": "{{ item }}"}, update_state=True)]}
    )
    assert [d["loc"] for d in found] == ["nodes[0].update_state"]


def test_a_tool_timeout_the_executor_lambda_would_cut_first_is_refused() -> None:
    # GIVEN a built-in tool node whose timeout reaches the executor Lambda's own 900 s, and one inheriting it
    spec = {
        "nodes": [
            {"id": "long", "tool": "util.echo", "timeout_seconds": 900},
            {"id": "inherits", "tool": "util.echo"},
            {"id": "mine", "tool": "lambda:my-fn"},
        ],
        "options": {"default_timeout_seconds": 3600},
    }
    found = errors(spec)
    # THEN both tool nodes are refused naming the executor's limit; a user's own Lambda may wait longer
    assert [(e["loc"], e["node"]) for e in found] == [
        ("nodes[0].timeout_seconds", "long"),
        ("options.default_timeout_seconds", "inherits"),
    ]
    assert "executor Lambda's timeout, 900 s" in found[0]["message"]
    assert "over 890 s" in found[0]["message"]
