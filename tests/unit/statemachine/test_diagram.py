"""Mermaid text of a graph: nodes labelled by tool, conditions on edges, loops and foreach visible."""

from __future__ import annotations

from statemachine.diagram import mermaid
from statemachine.spec import GraphSpec


def test_mermaid_shows_tools_conditions_loops_and_foreach() -> None:
    # GIVEN a graph with a condition, a bounded loop, a foreach and an optional node; one node is named "end"
    spec = GraphSpec.model_validate(
        {
            "name": "d",
            "nodes": [
                {"id": "fetch", "tool": "http.get"},
                {"id": "each", "tool": "util.echo", "foreach": "{{ fetch.json.items }}", "max_concurrency": 4},
                {"id": "score", "tool": "code.score", "update_state": True},
                {"id": "end", "tool": "chart.bar", "optional": True},
            ],
            "edges": [
                {"from": "fetch", "to": "each", "when": "fetch.status_code == 200"},
                {"from": "each", "to": "score"},
                {"from": "score", "to": "each", "when": "state.quality_score < 8", "max_iterations": 3},
                {"from": "score", "to": "end"},
            ],
        }
    )
    # WHEN it is drawn
    text = mermaid(spec)
    # THEN every node is labelled by its tool, conditions label edges, the loop is dotted with its bound
    assert text.splitlines() == [
        "flowchart TD",
        '    n_fetch["<b>fetch</b><br/>http.get"]',
        '    n_each[["<b>each</b><br/>util.echo<br/>foreach #123;#123; fetch.json.items #125;#125;, max 4 at once"]]',
        '    n_score["<b>score</b><br/>code.score<br/>updates state"]',
        '    n_end("<b>end</b><br/>chart.bar<br/>optional")',
        '    n_fetch -->|"fetch.status_code == 200"| n_each',
        "    n_each --> n_score",
        '    n_score -.->|"loop ≤3: state.quality_score &lt; 8"| n_each',
        "    n_score --> n_end",
    ]
