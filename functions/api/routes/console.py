"""``GET /console``: the browser console, one self-contained page (no API key needed to load it).

The page is ``functions/api/console/index.html`` with its stylesheet and script inlined, so it ships inside
the API function and asks no other host for anything. Its Content-Security-Policy says the same to the
browser: scripts and styles only those inlined here (by hash), requests only to this origin and, when the
stack has one (``STEPGRAPH_WS_URL``), to its WebSocket API for live run events.
"""

from __future__ import annotations

import base64
import hashlib
import html as markup
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.settings import get_settings

router = APIGatewayRouter()

ASSETS = Path(__file__).resolve().parents[1] / "console"


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _socket_origin(url: str | None) -> str | None:
    """``ws[s]://host[:port]`` of the stack's WebSocket API, or None when there is none (or it is not ws/wss)."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("ws", "wss") and parts.netloc else None


@lru_cache(maxsize=4)
def page(ws_url: str | None = None) -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy (``ws_url``: the WebSocket API the page may use)."""
    style = (ASSETS / "console.css").read_text(encoding="utf-8")
    script = (ASSETS / "console.js").read_text(encoding="utf-8")
    html = (ASSETS / "index.html").read_text(encoding="utf-8")
    socket = _socket_origin(ws_url)
    meta = f'<meta name="stepgraph-ws" content="{markup.escape(ws_url or "")}">' if socket else ""
    html = html.replace("<style></style>", f"{meta}<style>{style}</style>", 1)
    html = html.replace("<script></script>", f"<script>{script}</script>", 1)
    # The diagrams the page shows are the API's SVG, whose <style> is one fixed block (imported here: the
    # renderer and the graph model behind it are not needed by a cold start that serves no page).
    from statemachine.render import STYLE as DIAGRAM_STYLE

    styles = f"{_hash(style)} {_hash(DIAGRAM_STYLE)}"
    connect = f"'self' {socket}" if socket else "'self'"
    policy = (
        f"default-src 'none'; script-src {_hash(script)}; style-src {styles}; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, policy


@router.get("/console", include_in_schema=False, security=[])
def get_console() -> Response[str]:
    html, policy = page(get_settings().ws_url)
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=html,
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
