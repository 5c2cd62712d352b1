"""Pictures of graphs: every node, edge, condition and loop is drawn, and nothing is drawn over anything else."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from statemachine import render

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SVG = "{http://www.w3.org/2000/svg}"
LATTICE = {
    "name": "lattice",
    "nodes": [{"id": n, "tool": "util.echo"} for n in "abcdefgh"],
    "edges": [
        {"from": "a", "to": "b"},
        {"from": "a", "to": "c"},
        {"from": "a", "to": "e"},
        {"from": "b", "to": "d"},
        {"from": "c", "to": "d"},
        {"from": "d", "to": "f"},
        {"from": "e", "to": "f", "when": "e.ok == True and e.count > 10"},
        {"from": "b", "to": "g", "when": "b.route == 'left'"},
        {"from": "g", "to": "h"},
        {"from": "f", "to": "h"},
        {"from": "h", "to": "b", "max_iterations": 2, "when": "state.rounds < 3"},
    ],
}
SPECS = {p.stem: json.loads(p.read_text()) for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json")}
SPECS["lattice"] = LATTICE

Rect = tuple[float, float, float, float]


def rect_of(element: ET.Element) -> Rect:
    x, y = float(element.get("x", 0)), float(element.get("y", 0))
    return x, y, x + float(element.get("width", 0)), y + float(element.get("height", 0))


def overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def drawn(spec: dict[str, Any]) -> tuple[ET.Element, dict[str, Rect], list[tuple[ET.Element, Rect]]]:
    root = ET.fromstring(render.graph_to_svg(spec))
    nodes = {
        g.get("data-node", ""): rect_of(g.findall(f"{SVG}rect")[-1]) for g in root.iter(f"{SVG}g") if g.get("data-node")
    }
    labels = [(g, rect_of(g.find(f"{SVG}rect"))) for g in root.iter(f"{SVG}g") if g.get("class") == "label"]  # type: ignore[arg-type]
    return root, nodes, labels


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_node_edge_condition_and_loop_is_drawn(name: str) -> None:
    # GIVEN a graph spec WHEN it is drawn
    spec = SPECS[name]
    root, nodes, labels = drawn(spec)

    # THEN each node is a box holding its id and tool
    assert set(nodes) == {n["id"] for n in spec["nodes"]}
    for group in root.iter(f"{SVG}g"):
        if group.get("data-node"):
            node = next(n for n in spec["nodes"] if n["id"] == group.get("data-node"))
            texts = [t.text for t in group.iter(f"{SVG}tspan")]
            assert texts[:2] == [node["id"], node["tool"]]
    # AND each edge is an arrow, loops dashed apart from the others, conditions and maps written on them
    forward = [(e["from"], e["to"]) for e in spec.get("edges", []) if not e.get("max_iterations")]
    loops = [(e["from"], e["to"]) for e in spec.get("edges", []) if e.get("max_iterations")]
    paths = list(root.iter(f"{SVG}path"))
    assert sorted((p.get("data-from"), p.get("data-to")) for p in paths if p.get("class") == "edge") == sorted(forward)
    assert sorted((p.get("data-from"), p.get("data-to")) for p in paths if p.get("class") == "loop") == sorted(loops)
    written = " ".join(" ".join(t.text or "" for t in g.iter(f"{SVG}tspan")) for g, _ in labels)
    for edge in spec.get("edges", []):
        if edge.get("when") and not edge.get("max_iterations"):
            assert " ".join(edge["when"].split()[:2]) in written
        for param in edge.get("map") or {}:
            assert f"{param} ←" in written


@pytest.mark.parametrize("name", sorted(SPECS))
def test_nothing_is_drawn_over_anything_else(name: str) -> None:
    # GIVEN a drawn graph
    root, nodes, labels = drawn(SPECS[name])
    width, height = float(root.get("width", 0)), float(root.get("height", 0))

    # THEN no two boxes overlap, no condition sits on a box or on another condition, and all is on the canvas
    boxes = list(nodes.values()) + [rect for _, rect in labels]
    for a, b in combinations(boxes, 2):
        assert not overlap(a, b), (a, b)
    for left, top, right, bottom in boxes:
        assert left >= 0 and right <= width and top >= 0 and bottom <= height


def test_foreach_optional_and_lambda_nodes_look_different() -> None:
    # GIVEN a node of each kind
    spec = {
        "name": "kinds",
        "nodes": [
            {"id": "each", "tool": "util.echo", "foreach": "{{ input.items }}", "max_concurrency": 3},
            {"id": "maybe", "tool": "util.sleep", "params": {"seconds": 1}, "optional": True, "timeout_seconds": 2},
            {"id": "mine", "tool": "lambda:my-agent", "update_state": True},
        ],
    }
    root = ET.fromstring(render.graph_to_svg(spec))
    groups = {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}

    # THEN foreach is a stack of cards with its list, optional is dashed, a user's Lambda is coloured apart
    assert len(groups["each"].findall(f"{SVG}rect")) == 3
    assert "for each input.items, 3 at once" in [t.text for t in groups["each"].iter(f"{SVG}tspan")]
    assert "optional" in (groups["maybe"].get("class") or "").split()
    assert "timeout 2 s" in [t.text for t in groups["maybe"].iter(f"{SVG}tspan")]
    assert "lambda" in (groups["mine"].get("class") or "").split()
    assert "updates state" in [t.text for t in groups["mine"].iter(f"{SVG}tspan")]
