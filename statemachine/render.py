"""Pictures of graphs: a graph spec laid out as a standalone SVG (the API's ``diagram?format=svg``, the
console's run view and ``stepgraph graphs diagram --svg``).

The layout is done here, in-process, with no browser and no network: nodes are placed in layers (longest path
from the roots), ordered to reduce crossings, and spaced so that edge conditions get room of their own; loop
back-edges are drawn dashed on the right. Each node is a ``<g class="node" data-node="<id>">`` so a page can
find it (and colour it by status).
"""

from __future__ import annotations

import html
import itertools
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from statemachine.graph import GraphModel
from statemachine.spec import GraphSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from statemachine.spec import Edge, Node

CHAR_W, LINE_H, LABEL_LINE_H = 7.4, 17.0, 15.0
NODE_PAD_X, NODE_PAD_Y, MIN_NODE_W = 14.0, 8.0, 96.0
H_GAP, V_GAP, MARGIN, LOOP_GAP = 28.0, 34.0, 16.0, 26.0
LABEL_WRAP = 30


def text_width(text: str, char_w: float = CHAR_W) -> float:
    return len(text) * char_w


def wrap(text: str, width: int = LABEL_WRAP) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [text]


@dataclass
class Box:
    """A node (or a dummy point on a long edge) with its size and, once laid out, its centre."""

    id: str
    lines: list[str] = field(default_factory=list)
    dummy: bool = False
    node: Node | None = None
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    slot: float = 0.0  # horizontal room: the node or the widest label above it

    @property
    def top(self) -> float:
        return self.y - self.height / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height / 2


@dataclass
class Label:
    lines: list[str]
    x: float = 0.0
    y: float = 0.0  # top

    @property
    def width(self) -> float:
        return max(text_width(line, 6.8) for line in self.lines) + 10

    @property
    def height(self) -> float:
        return len(self.lines) * LABEL_LINE_H + 6


def node_lines(node: Node) -> list[str]:
    lines = [node.id, node.tool]
    notes = []
    if node.foreach:
        each = node.foreach.replace("{{", "").replace("}}", "").strip()
        limit = node.max_concurrency
        notes.append(f"for each {each}" + (f", {limit} at once" if limit else ""))
    if node.optional:
        notes.append("optional")
    if node.update_state:
        notes.append("updates state")
    if node.timeout_seconds:
        notes.append(f"timeout {node.timeout_seconds} s")
    if node.retry is not None and node.retry.max_attempts:
        notes.append(f"retries {node.retry.max_attempts}")
    for note in notes:
        lines.extend(wrap(note, 36))
    return lines


def edge_label(edge: Edge) -> list[str]:
    lines: list[str] = []
    if edge.when:
        lines.extend(wrap(edge.when))
    for param, path in (edge.map or {}).items():
        lines.append(f"{param} ← {edge.from_}.{path}" if path not in ("", ".") else f"{param} ← {edge.from_}")
    return lines


@dataclass
class Layout:
    boxes: dict[str, Box]
    layers: list[list[str]]
    chains: list[tuple[Edge, list[str]]]  # forward edge and the boxes it passes through
    labels: list[tuple[Label, Edge]]
    loops: list[Edge]
    width: float = 0.0
    height: float = 0.0


def layout(model: GraphModel) -> Layout:
    """Place the nodes of a graph: layers top to bottom, room for conditions above their target."""
    nodes = model.spec.nodes
    forward, loops = model.forward, model.back

    # Layers: the longest path from the roots over forward edges, in the model's topological order.
    layer = dict.fromkeys(model.topo, 0)
    for node_id in model.topo:
        for edge in model.children[node_id]:
            layer[edge.to] = max(layer[edge.to], layer[node_id] + 1)

    boxes = {n.id: Box(n.id, node_lines(n), node=n, layer=layer[n.id]) for n in nodes}
    chains: list[tuple[Edge, list[str]]] = []
    for index, edge in enumerate(forward):
        start, end = edge.from_, edge.to
        path = [start]
        for step in range(layer[start] + 1, layer[end]):
            dummy = f"~{index}.{step}"
            boxes[dummy] = Box(dummy, dummy=True, layer=step)
            path.append(dummy)
        path.append(end)
        chains.append((edge, path))

    depth = max((b.layer for b in boxes.values()), default=0) + 1
    layers: list[list[str]] = [[] for _ in range(depth)]
    for box_id, box in boxes.items():
        layers[box.layer].append(box_id)
    _order(layers, chains)

    # Sizes; each labelled edge's label sits in the gap above its target, so the target's slot fits it.
    labels: list[tuple[Label, Edge]] = []
    above: dict[str, list[Label]] = {}
    for edge, _ in chains:
        lines = edge_label(edge)
        if lines:
            label = Label(lines)
            labels.append((label, edge))
            above.setdefault(edge.to, []).append(label)
    for box in boxes.values():
        if box.dummy:
            box.width, box.height, box.slot = 8.0, 0.0, 8.0 + H_GAP / 2
            continue
        box.width = max(MIN_NODE_W, max(text_width(line) for line in box.lines) + 2 * NODE_PAD_X)
        box.height = len(box.lines) * LINE_H + 2 * NODE_PAD_Y
        box.slot = max([box.width] + [label.width for label in above.get(box.id, [])]) + H_GAP

    # Vertical: each gap is as tall as the labels stacked in it.
    y = MARGIN
    for row in layers:
        label_room = max((sum(lab.height + 4 for lab in above.get(i, [])) for i in row), default=0.0)
        y += label_room + (V_GAP if y > MARGIN else 0.0)
        tallest = max((boxes[i].height for i in row), default=0.0)
        for box_id in row:
            boxes[box_id].y = y + tallest / 2
        y += tallest
    height = y + MARGIN

    _place_x(layers, boxes, parents_of(chains))
    for box_id, stacked in above.items():
        target = boxes[box_id]
        top = target.top - 6
        for label in reversed(stacked):
            top -= label.height + 4
            label.x, label.y = target.x - label.width / 2, top + 4

    right = max([b.x + b.slot / 2 for b in boxes.values()] + [MARGIN])
    result = Layout(boxes, layers, chains, labels, loops)
    loop_room = 0.0
    for index, edge in enumerate(loops):
        text = loop_text(edge)
        loop_room = max(loop_room, LOOP_GAP * (index + 1) + max(text_width(t, 6.8) for t in text) + 16)
    result.width = right + loop_room + MARGIN
    result.height = height
    return result


def parents_of(chains: list[tuple[Edge, list[str]]]) -> dict[str, list[str]]:
    """Each box's neighbours one layer up, along the drawn chains."""
    up: dict[str, list[str]] = {}
    for _, path in chains:
        for upper, lower in itertools.pairwise(path):
            up.setdefault(lower, []).append(upper)
    return up


def _order(layers: list[list[str]], chains: list[tuple[Edge, list[str]]]) -> None:
    """Barycentre sweeps down and up, to reduce crossings; ties keep the spec's order."""
    up = parents_of(chains)
    down: dict[str, list[str]] = {}
    for lower, uppers in up.items():
        for upper in uppers:
            down.setdefault(upper, []).append(lower)
    for _ in range(4):
        for neighbours, rows in ((up, range(1, len(layers))), (down, range(len(layers) - 2, -1, -1))):
            for r in rows:
                ref = layers[r - 1] if neighbours is up else layers[r + 1]
                position = {box_id: i for i, box_id in enumerate(ref)}
                before = {box_id: i for i, box_id in enumerate(layers[r])}

                def key(
                    box_id: str,
                    pos: dict[str, int] = position,
                    was: dict[str, int] = before,
                    links: dict[str, list[str]] = neighbours,
                ) -> tuple[float, int]:
                    linked = [pos[n] for n in links.get(box_id, []) if n in pos]
                    return (sum(linked) / len(linked) if linked else float(was[box_id]), was[box_id])

                layers[r].sort(key=key)


def _place_x(layers: list[list[str]], boxes: dict[str, Box], up: dict[str, list[str]]) -> None:
    """Left to right in each row, then pulled under their parents without breaking the order or overlapping."""
    widest = max((sum(boxes[i].slot for i in row) for row in layers), default=0.0)
    for row in layers:
        x = MARGIN + (widest - sum(boxes[i].slot for i in row)) / 2
        for box_id in row:
            boxes[box_id].x = x + boxes[box_id].slot / 2
            x += boxes[box_id].slot
    down: dict[str, list[str]] = {}
    for lower, uppers in up.items():
        for upper in uppers:
            down.setdefault(upper, []).append(lower)
    for _ in range(3):
        for rows, links in ((layers[1:], up), (layers[-2::-1], down)):
            for row in rows:
                for box_id in row:
                    linked = links.get(box_id, [])
                    if linked:
                        boxes[box_id].x = sum(boxes[p].x for p in linked) / len(linked)
                _separate(row, boxes)
    shift = MARGIN - min((boxes[i].x - boxes[i].slot / 2 for row in layers for i in row), default=MARGIN)
    for box in boxes.values():
        box.x += shift


def _separate(row: list[str], boxes: dict[str, Box]) -> None:
    """Push boxes of a row apart (left to right, then back) so their slots never overlap."""
    for left, right in itertools.pairwise(row):
        least = boxes[left].x + (boxes[left].slot + boxes[right].slot) / 2
        boxes[right].x = max(boxes[right].x, least)
    for left, right in zip(reversed(row[:-1]), reversed(row[1:]), strict=False):
        most = boxes[right].x - (boxes[left].slot + boxes[right].slot) / 2
        boxes[left].x = min(boxes[left].x, most)


def loop_text(edge: Edge) -> list[str]:
    head = f"loop, at most {edge.max_iterations} times"
    return [head + (" while" if edge.when else ""), *(wrap(edge.when, 34) if edge.when else [])]


# --------------------------------------------------------------------------------------------------- SVG

STYLE = """
.node rect { fill: #eef2ff; stroke: #4f46e5; stroke-width: 1.2; }
.node.lambda rect { fill: #fff7ed; stroke: #c2410c; }
.node.optional rect { stroke-dasharray: 5 3; }
.node text { font: 13px ui-sans-serif, system-ui, sans-serif; fill: #1f2937; text-anchor: middle; }
.node text .id { font-weight: bold; }
.node text .tool { fill: #4338ca; }
.node text .note { font-size: 11.5px; fill: #6b7280; }
.edge { fill: none; stroke: #374151; stroke-width: 1.3; }
.loop { fill: none; stroke: #7c3aed; stroke-width: 1.3; stroke-dasharray: 6 4; }
.label rect { fill: #ffffff; stroke: #d1d5db; }
.label text, .loop-label { font: 11.5px ui-monospace, monospace; fill: #111827; }
.loop-label { fill: #6d28d9; }
"""


def graph_to_svg(spec: Mapping[str, Any] | GraphSpec) -> str:
    """A standalone SVG picture of a valid graph spec (the model, or a dict in the API's JSON form)."""
    graph = spec if isinstance(spec, GraphSpec) else GraphSpec.model_validate(spec)
    lay = layout(GraphModel.build(graph))
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width:.0f}" height="{lay.height:.0f}" '
        f'viewBox="0 0 {lay.width:.1f} {lay.height:.1f}" font-family="sans-serif">',
        f"<title>{html.escape(graph.name or 'graph')}</title>",
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#374151"/></marker>',
        '<marker id="loop-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7c3aed"/></marker>',
        f"<style>{STYLE}</style>",
        "</defs>",
        '<rect width="100%" height="100%" fill="#ffffff"/>',
    ]
    boxes = lay.boxes
    for edge, path in lay.chains:
        points = [(boxes[path[0]].x, boxes[path[0]].bottom)]
        points += [(boxes[p].x, boxes[p].y) for p in path[1:-1]]
        points.append((boxes[path[-1]].x, boxes[path[-1]].top))
        d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
        for (x1, y1), (x2, y2) in itertools.pairwise(points):
            mid = (y1 + y2) / 2
            d += f" C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
        out.append(
            f'<path class="edge" data-from="{html.escape(edge.from_)}" data-to="{html.escape(edge.to)}" '
            f'd="{d}" marker-end="url(#arrow)"/>'
        )
    right = max(b.x + b.width / 2 for b in boxes.values()) if boxes else MARGIN
    for index, edge in enumerate(lay.loops):
        source, target = boxes[edge.from_], boxes[edge.to]
        bend = right + LOOP_GAP * (index + 1)
        # Out of the source's right side, up the far right, then in above the target, so no node is crossed.
        sx, sy = source.x + source.width / 2, source.y
        tx, ty = target.x + target.width / 4, target.top - 12
        r = 8.0
        up = -1.0 if ty < sy else 1.0
        d = (
            f"M{sx:.1f},{sy:.1f} H{bend - r:.1f} Q{bend:.1f},{sy:.1f} {bend:.1f},{sy + up * r:.1f} "
            f"V{ty - up * r:.1f} Q{bend:.1f},{ty:.1f} {bend - r:.1f},{ty:.1f} H{tx + r:.1f} "
            f"Q{tx:.1f},{ty:.1f} {tx:.1f},{ty + r:.1f} V{target.top:.1f}"
        )
        out.append(
            f'<path class="loop" data-from="{html.escape(edge.from_)}" data-to="{html.escape(edge.to)}" '
            f'd="{d}" marker-end="url(#loop-arrow)"/>'
        )
        lines = loop_text(edge)
        top = (sy + ty) / 2 - len(lines) * LABEL_LINE_H / 2
        for n, line in enumerate(lines):
            out.append(
                f'<text class="loop-label" x="{bend + 6:.1f}" y="{top + (n + 0.8) * LABEL_LINE_H:.1f}">'
                f"{html.escape(line)}</text>"
            )
    for box in boxes.values():
        node = box.node
        if node is None:  # a dummy point on a long edge
            continue
        classes = ["node"]
        if node.is_lambda:
            classes.append("lambda")
        if node.optional:
            classes.append("optional")
        left, top = box.x - box.width / 2, box.top
        out.append(f'<g class="{" ".join(classes)}" data-node="{html.escape(box.id)}">')
        if node.foreach:  # a stack of cards: one run per item
            for offset in (8, 4):
                out.append(
                    f'<rect x="{left + offset:.1f}" y="{top - offset:.1f}" width="{box.width:.1f}" '
                    f'height="{box.height:.1f}" rx="6"/>'
                )
        out.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="6"/>')
        out.append("<text>")
        for n, line in enumerate(box.lines):
            kind = "id" if n == 0 else "tool" if n == 1 else "note"
            y = top + NODE_PAD_Y + (n + 0.75) * LINE_H
            out.append(f'<tspan class="{kind}" x="{box.x:.1f}" y="{y:.1f}">{html.escape(line)}</tspan>')
        out.append("</text></g>")
    for label, edge in lay.labels:
        out.append(f'<g class="label" data-from="{html.escape(edge.from_)}" data-to="{html.escape(edge.to)}">')
        out.append(
            f'<rect x="{label.x:.1f}" y="{label.y:.1f}" width="{label.width:.1f}" height="{label.height:.1f}" rx="3"/>'
        )
        out.append("<text>")
        for n, line in enumerate(label.lines):
            y = label.y + 3 + (n + 0.8) * LABEL_LINE_H
            out.append(f'<tspan x="{label.x + 5:.1f}" y="{y:.1f}">{html.escape(line)}</tspan>')
        out.append("</text></g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
