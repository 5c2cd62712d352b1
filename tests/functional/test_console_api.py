"""What the console needs from the API, through the local stack: the page without a key, the SVG diagram
with node ids, and CORS for front ends of other origins (none allowed unless configured)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from local.cloud import LocalCloud

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

EVENTS = Path(__file__).resolve().parents[2] / "events"
SVG = "{http://www.w3.org/2000/svg}"
SPEC = {
    "name": "pair",
    "nodes": [
        {"id": "first", "tool": "util.echo", "params": {"message": "hi"}},
        {"id": "second", "tool": "util.echo", "params": {"message": "{{ first.message }}"}},
    ],
    "edges": [{"from": "first", "to": "second"}],
}
FRONT_END = "https://app.example.com"


def test_the_console_page_loads_without_a_key_and_names_no_other_host(cloud: LocalCloud) -> None:
    # WHEN the console is fetched with no API key
    with cloud.client() as anonymous:
        page = anonymous.get("/console")

    # THEN it is an HTML page whose policy lets it talk to its own origin only
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "<script>" in page.text and "x-api-key" in page.text
    # AND nothing in it points at another host: no absolute URL outside the text it shows
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    assert "fetch(BASE + path" in page.text


def test_data_routes_still_need_the_key(cloud: LocalCloud) -> None:
    # WHEN a data route is called without the key THEN it is refused, the console route is not
    with cloud.client() as anonymous:
        assert anonymous.get("/graphs").status_code == 401
        assert anonymous.get("/console").status_code == 200
    with cloud.client(api_key="wrong") as wrong:
        refused = wrong.get("/graphs")
    assert refused.status_code == 401
    assert "API key" in refused.json()["error"]["message"]


def test_the_svg_diagram_carries_every_node_id(api: httpx.Client) -> None:
    # GIVEN a graph
    graph_id = api.post("/graphs", json=SPEC).json()["graph_id"]

    # WHEN its diagram is asked for as SVG
    drawn = api.get(f"/graphs/{graph_id}/diagram", params={"format": "svg"})

    # THEN it is the project's SVG, one <g data-node> per node, and an edge from first to second
    assert drawn.status_code == 200, drawn.text
    assert drawn.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(drawn.text)
    nodes = {g.get("data-node") for g in root.iter(f"{SVG}g") if g.get("data-node")}
    assert nodes == {"first", "second"}
    edges = {(p.get("data-from"), p.get("data-to")) for p in root.iter(f"{SVG}path") if p.get("data-from")}
    assert edges == {("first", "second")}
    # AND the Mermaid form is unchanged by default; an unknown format and an unknown version are refused
    assert api.get(f"/graphs/{graph_id}/diagram").json()["format"] == "mermaid"
    assert api.get(f"/graphs/{graph_id}/diagram", params={"format": "png"}).status_code == 422
    assert api.get(f"/graphs/{graph_id}/diagram", params={"format": "svg", "version": 2}).status_code == 404


def test_no_origin_is_allowed_by_default(api: httpx.Client) -> None:
    # WHEN a page of another origin calls the API, or asks first (preflight)
    called = api.get("/graphs", headers={"Origin": FRONT_END})
    asked = api.options("/graphs", headers={"Origin": FRONT_END, "Access-Control-Request-Method": "POST"})

    # THEN the preflight is answered, but no answer carries a CORS header: the browser keeps the page out
    assert called.status_code == 200
    assert asked.status_code == 204
    for response in (called, asked):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


@pytest.fixture
def cors_cloud() -> Iterator[LocalCloud]:
    with LocalCloud(env={"STEPGRAPH_CORS_ORIGINS": f"{FRONT_END}, https://other.example.com"}) as local_cloud:
        yield local_cloud


def test_allowed_origins_get_cors_headers_and_others_none(cors_cloud: LocalCloud) -> None:
    with cors_cloud.client(api_key=cors_cloud.api_key) as api, cors_cloud.client() as anonymous:
        # WHEN an allowed origin sends a preflight (without a key, as browsers do)
        asked = anonymous.options(
            "/graphs/g_123/runs",
            headers={
                "Origin": FRONT_END,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-api-key,idempotency-key",
            },
        )
        # THEN it may send the key and the idempotency key with any of the API's methods
        assert asked.status_code == 204
        assert asked.headers["access-control-allow-origin"] == FRONT_END
        allowed_headers = {h.strip().lower() for h in asked.headers["access-control-allow-headers"].split(",")}
        assert {"content-type", "x-api-key", "idempotency-key"} <= allowed_headers
        assert {"GET", "POST", "PUT", "DELETE"} <= set(asked.headers["access-control-allow-methods"].split(","))

        # AND its requests' answers, refusals included, let the page read them
        listed = api.get("/graphs", headers={"Origin": FRONT_END})
        refused = anonymous.get("/graphs", headers={"Origin": FRONT_END})
        assert listed.status_code == 200 and refused.status_code == 401
        for response in (listed, refused):
            assert response.headers["access-control-allow-origin"] == FRONT_END
            assert response.headers["vary"] == "Origin"

        # AND an origin not on the list gets no CORS header, on the preflight or the request
        other = "https://evil.example.net"
        for response in (
            anonymous.options("/graphs", headers={"Origin": other, "Access-Control-Request-Method": "GET"}),
            api.get("/graphs", headers={"Origin": other}),
        ):
            assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_the_sample_console_event_answers_the_page(cloud: LocalCloud) -> None:
    # GIVEN events/api-get-console.json (for `sam local invoke ApiFunction -e ...`): GET /v1/console, no key
    event = json.loads((EVENTS / "api-get-console.json").read_text())

    # WHEN the API function gets it
    result = cloud.invoke("ApiFunction", event)

    # THEN it answers the page
    assert result.function_error is None, result.payload
    answer = result.json()
    assert answer["statusCode"] == 200
    headers = {k.lower(): v for k, v in (answer.get("multiValueHeaders") or {}).items()}
    assert headers["content-type"] == ["text/html; charset=utf-8"]
    assert "<title>stepgraph console</title>" in answer["body"]


def test_the_page_may_reach_the_stacks_websocket_api_and_nothing_else() -> None:
    # GIVEN a stack with a WebSocket API for live events
    socket = "wss://abc123.execute-api.us-east-1.amazonaws.com/v1"
    with LocalCloud(env={"STEPGRAPH_WS_URL": socket}) as live, live.client() as anonymous:
        page = anonymous.get("/console")

    # THEN the page names it, and its policy allows that origin besides its own, and no other
    assert '<meta name="stepgraph-ws" content="wss://abc123.execute-api.us-east-1.amazonaws.com/v1">' in page.text
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["connect-src"] == "'self' wss://abc123.execute-api.us-east-1.amazonaws.com"
