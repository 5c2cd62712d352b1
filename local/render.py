"""Pictures of graphs: Mermaid text to SVG (merm, pure Python) or to a standalone HTML page.

No browser and no network are needed: the SVG is laid out in-process. The HTML page embeds that SVG and the
Mermaid source; when the page is opened online it also offers Mermaid's own rendering.
"""

from __future__ import annotations

import html

MERMAID_CDN = "https://cdn.jsdelivr.net/npm/mermaid@11/dist/mermaid.esm.min.mjs"


class RenderError(Exception):
    """The Mermaid text could not be laid out as a picture."""


def mermaid_to_svg(mermaid: str) -> str:
    """An SVG document of a Mermaid flowchart."""
    import merm

    if not mermaid.strip():
        raise RenderError("the diagram is empty")
    try:
        svg = merm.render_diagram(mermaid)
    except Exception as exc:  # merm raises ParseError, ValueError and layout errors alike
        raise RenderError(f"cannot render this Mermaid as SVG: {exc}") from exc
    return str(svg)


def mermaid_to_html(mermaid: str, title: str = "stepgraph") -> str:
    """A standalone HTML page: the SVG inline (offline), the Mermaid source, and Mermaid's rendering when online."""
    try:
        picture = mermaid_to_svg(mermaid)
        note = ""
    except RenderError as exc:
        picture = ""
        note = f"<p class='note'>{html.escape(str(exc))}; the rendering below needs a connection.</p>"
    escaped = html.escape(mermaid)
    name = html.escape(title)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name} · stepgraph</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.picture svg {{ max-width: 100%; height: auto; }}
pre {{ background: #f6f6f6; padding: 1rem; overflow: auto; }}
.note {{ color: #a00; }}
</style>
</head>
<body>
<h1>{name}</h1>
{note}
<div class="picture">{picture}</div>
<details{"" if picture else " open"}><summary>Mermaid's own rendering (needs a connection)</summary>
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
    console.info("Mermaid is not reachable; the inline SVG stands", error);
  }}
</script>
</body>
</html>
"""
