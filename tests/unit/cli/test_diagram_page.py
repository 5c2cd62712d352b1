"""``stepgraph graphs diagram --html``: a standalone page around the graph's SVG picture."""

from __future__ import annotations

from stepgraph_cli.page import graph_to_html
from tests.unit.statemachine.test_render import LATTICE


def test_html_page_holds_the_picture_and_the_mermaid() -> None:
    # GIVEN a spec and its Mermaid text with characters HTML must escape
    mermaid = 'flowchart TD\n  a["a"] -->|"a.n &lt; 3"| b["b"]\n'
    page = graph_to_html(LATTICE, mermaid)

    # THEN the page is standalone: the SVG inline, the Mermaid source escaped, the name as title
    assert "<title>lattice · stepgraph</title>" in page
    assert page.count("<svg") == 1 and 'data-node="h"' in page
    assert "a.n &amp;lt; 3" in page
