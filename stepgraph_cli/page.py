"""A standalone HTML page around a graph's SVG (``stepgraph graphs diagram --html``): the picture inline
(works offline) and the graph's Mermaid text, which GitHub and Mermaid itself draw too when opened online."""

from __future__ import annotations

import html
from typing import Any

from statemachine.render import graph_to_svg

MERMAID_CDN = "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.esm.min.mjs"

__all__ = ["graph_to_html", "graph_to_svg"]


def graph_to_html(spec: dict[str, Any], mermaid: str = "") -> str:
    """A standalone HTML page: the SVG inline (works offline) and the Mermaid source, drawn by Mermaid online."""
    name = html.escape(str(spec.get("name") or "graph"))
    description = html.escape(str(spec.get("description") or ""))
    escaped = html.escape(mermaid)
    mermaid_part = (
        f"""<details><summary>Drawn by Mermaid (needs a connection)</summary>
<pre class="mermaid">{escaped}</pre>
</details>
<details><summary>Mermaid source</summary>
<pre>{escaped}</pre>
</details>
<script type="module">
  try {{
    const {{ default: mermaid }} = await import("{MERMAID_CDN}");
    mermaid.initialize({{ startOnLoad: false }});
    await mermaid.run({{ querySelector: "pre.mermaid" }});
  }} catch (error) {{
    console.info("Mermaid is not reachable; the picture above stands on its own", error);
  }}
</script>"""
        if mermaid
        else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name} · stepgraph</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2937; }}
.picture svg {{ max-width: 100%; height: auto; }}
pre {{ background: #f6f6f6; padding: 1rem; overflow: auto; }}
</style>
</head>
<body>
<h1>{name}</h1>
<p>{description}</p>
<div class="picture">
{graph_to_svg(spec)}</div>
{mermaid_part}
</body>
</html>
"""
