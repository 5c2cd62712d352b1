"""Mermaid flowchart text for a graph: nodes labelled by tool, conditions on edges, loops and foreach visible.

Shapes: a plain node is a box, a ``foreach`` node a double-bordered box (``[[...]]``) labelled with its list
and concurrency, an optional node a rounded box. Loop back-edges are dotted and say their bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statemachine.spec import GraphSpec, Node


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace('"', "#quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("{", "#123;")
        .replace("}", "#125;")
        .replace("|", "#124;")
    )


def _mid(node_id: str) -> str:
    # mermaid keywords such as "end" break flowcharts: prefix every id
    return f"n_{node_id.replace('-', '_h_')}"


def _label(node: Node) -> str:
    lines = [f"<b>{_esc(node.id)}</b>", _esc(node.tool)]
    if node.foreach:
        conc = f", max {node.max_concurrency} at once" if node.max_concurrency else ""
        lines.append(f"foreach {_esc(node.foreach)}{conc}")
    extras = [word for word, on in (("optional", node.optional), ("updates state", bool(node.update_state))) if on]
    if extras:
        lines.append(", ".join(extras))
    return "<br/>".join(lines)


def mermaid(spec: GraphSpec) -> str:
    """The Mermaid text (``flowchart TD``) of a spec."""
    out = ["flowchart TD"]
    for node in spec.nodes:
        label = _label(node)
        if node.foreach:
            out.append(f'    {_mid(node.id)}[["{label}"]]')
        elif node.optional:
            out.append(f'    {_mid(node.id)}("{label}")')
        else:
            out.append(f'    {_mid(node.id)}["{label}"]')
    for edge in spec.edges:
        a, b = _mid(edge.from_), _mid(edge.to)
        if edge.max_iterations is not None:
            text = f"loop ≤{edge.max_iterations}" + (f": {edge.when}" if edge.when else "")
            out.append(f'    {a} -.->|"{_esc(text)}"| {b}')
        elif edge.when:
            out.append(f'    {a} -->|"{_esc(edge.when)}"| {b}')
        else:
            out.append(f"    {a} --> {b}")
    return "\n".join(out) + "\n"


to_mermaid = mermaid
