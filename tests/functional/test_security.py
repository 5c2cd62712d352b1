"""Security checks: the API key on every route of /openapi.json, and the SSRF guard end to end.

The template's checks (cfn-lint with the serverless rules, no ``*`` resource where a narrower ARN exists)
live in ``tests/functional/test_template.py``; the guard's address rules in
``tests/unit/tools/test_tool_http_guard.py``. This file adds what those do not cover: every documented
route refusing a missing or wrong key, URL forms that try to confuse the parser, a property that no
request ever reaches a non-public address, and a whole run whose ``http.get`` is refused.
No connection leaves this machine: the fake resolver answers names, requests go to ``httpx.MockTransport``
or to a server on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from functional_support import wait_for_run
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.errors import ToolError
from functions.executor.tools.http_get import Params, fetch
from local.cloud import LocalCloud

if TYPE_CHECKING:
    from collections.abc import Iterator

PUBLIC_PATHS = {"/health", "/docs", "/openapi.json"}
SAMPLE_PATH_VALUES = {
    "graph_id": "g_000000000000",
    "run_id": "r_0000000000000000",
    "name": "util.echo",
    "node": "each",
    "schedule_id": "s_000000000000",
}


# ---------------------------------------------------------------------------------------------- the API key


def documented_operations(api: httpx.Client) -> list[tuple[str, str]]:
    """(method, concrete path) for every operation of /openapi.json but the public ones."""
    document = api.get("/openapi.json").json()
    operations: list[tuple[str, str]] = []
    for template, item in document["paths"].items():
        if template in PUBLIC_PATHS:
            continue
        path = template
        for name, value in SAMPLE_PATH_VALUES.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"no sample value for a parameter of {template}"
        operations.extend((method.upper(), path) for method in item if method in {"get", "post", "put", "delete"})
    return operations


@pytest.mark.parametrize("key", [None, "", "wrong-key", "LOCAL-DEV-KEY", "local-dev-key ", "local-dev-ke"])
def test_every_documented_route_but_health_and_docs_refuses_a_missing_or_wrong_key(
    cloud: LocalCloud, key: str | None
) -> None:
    # GIVEN every operation the OpenAPI document lists (not /health and the docs)
    with cloud.client(api_key=cloud.api_key) as keyed:
        operations = documented_operations(keyed)
    assert len(operations) >= 15, operations  # the whole table of DESIGN.md
    refused: dict[str, int] = {}
    with cloud.client(api_key=key) as client:
        for method, path in operations:
            # WHEN it is called without the key, or with one that differs from it
            response = client.request(method, path, json={} if method in {"POST", "PUT"} else None)
            refused[f"{method} {path}"] = response.status_code
            # THEN it is 401 with the documented error body, which does not echo the key
            if response.status_code == 401:
                body = response.json()
                assert set(body) == {"error"} and body["error"]["code"], body
                assert cloud.api_key is not None and cloud.api_key not in response.text
    assert {op: s for op, s in refused.items() if s != 401} == {}


def test_the_right_key_passes_every_route_and_public_ones_need_none(cloud: LocalCloud) -> None:
    # GIVEN the same operations
    with cloud.client(api_key=cloud.api_key) as keyed, cloud.client() as anonymous:
        operations = documented_operations(keyed)
        # WHEN called with the right key THEN none is refused for the key (404/422 for the sample ids is fine)
        statuses = {
            f"{m} {p}": keyed.request(m, p, json={} if m in {"POST", "PUT"} else None).status_code
            for m, p in operations
        }
        assert {op: s for op, s in statuses.items() if s == 401} == {}
        # AND /health and the docs answer without a key
        for path in sorted(PUBLIC_PATHS):
            assert anonymous.get(path).status_code == 200, path


# ---------------------------------------------------------------------------------------------- the SSRF guard

NAMES = {
    "example.com": ["93.184.216.34"],
    "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
    "intranet.example.com": ["10.0.0.7"],
}


def fake_resolver(host: str, port: int, type: int = 0, **_: Any) -> list[tuple[Any, ...]]:
    """Numeric hosts as the OS parses them (no DNS query), names from ``NAMES``."""
    try:
        return socket.getaddrinfo(host, port, type=type, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    if host.rstrip(".").lower() not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    addresses = NAMES[host.rstrip(".").lower()]
    return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]


class Wire:
    """The inner transport: records every request that would have left the machine."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(200, json={"ok": True})


def attempt(url: str) -> tuple[Exception | None, Wire]:
    wire = Wire()
    try:
        fetch(Params(url=url, timeout_seconds=2), (), resolver=fake_resolver, transport=httpx.MockTransport(wire))
    except (ToolError, ValueError) as exc:
        return exc, wire
    return None, wire


def _public(host: str) -> bool:
    return ipaddress.ip_address(host.strip("[]")).is_global


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com@127.0.0.1/",  # userinfo: the host is 127.0.0.1
        "http://example.com:80@10.0.0.7/",
        "http://127.0.0.1#@example.com/",  # fragment: the host is 127.0.0.1
        "http://127.0.0.1./",  # trailing dot
        "HTTP://127.0.0.1/",
        "http://LOCALHOST/",
        "http://[fe80::1%25eth0]/",  # zone id
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://rebind.example.com/",  # one public, one loopback answer
        "http://intranet.example.com./",
        "http://%31%32%37.0.0.1/",  # percent-encoded host
    ],
)
def test_urls_that_try_to_confuse_the_parser_never_reach_a_private_address(url: str) -> None:
    # GIVEN a URL whose real destination is this machine or a private network, written to mislead
    # WHEN http.get's fetch is asked for it
    error, wire = attempt(url)
    # THEN it is refused (BlockedAddress, or an invalid URL) and nothing went on the wire
    assert error is not None, f"{url} was fetched: {[str(r.url) for r in wire.sent]}"
    assert wire.sent == []
    if isinstance(error, ToolError):
        assert error.code in {"BlockedAddress", "InvalidUrl", "HostNotFound"}, (url, error.code, error)


HOSTS = st.sampled_from(
    [
        "example.com",
        "rebind.example.com",
        "intranet.example.com",
        "127.0.0.1",
        "10.0.0.7",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "2130706433",
        "0x7f.1",
        "169.254.169.254",
        "93.184.216.34",
        "localhost",
        "0",
        "[::]",
        "192.168.1.1",
        "example.com.",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    userinfo=st.sampled_from(["", "user@", "example.com@", "a:b@"]),
    host=HOSTS,
    port=st.sampled_from(["", ":80", ":8080", ":443"]),
    path=st.sampled_from(["/", "/x?y=1", "#@example.com", "/..%2f"]),
    scheme=st.sampled_from(["http", "https", "HTTP"]),
)
def test_no_url_ever_sends_a_request_to_a_non_public_address(
    userinfo: str, host: str, port: str, path: str, scheme: str
) -> None:
    # GIVEN a URL assembled from tricky parts WHEN fetched through the guard
    url = f"{scheme}://{userinfo}{host}{port}{path}"
    error, wire = attempt(url)
    # THEN either it was refused, or every request that went out targets a public address
    assert all(_public(r.url.host) for r in wire.sent), (url, [str(r.url) for r in wire.sent])
    if error is None:
        assert wire.sent, url


class Target(BaseHTTPRequestHandler):
    """A loopback server that counts hits: a refused fetch must leave it at zero."""

    hits: list[str] = []

    def do_GET(self) -> None:
        Target.hits.append(self.path)
        body = b'{"secret": "internal"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    Target.hits = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_run_whose_http_get_targets_loopback_fails_with_blocked_address(loopback_server: str) -> None:
    # GIVEN the local stack with no allow list, and a live server on 127.0.0.1
    with LocalCloud(env={"STEPGRAPH_HTTP_ALLOW_HOSTS": ""}) as cloud, cloud.client(api_key=cloud.api_key) as api:
        spec = {
            "name": "ssrf",
            "nodes": [
                {
                    "id": "fetch",
                    "tool": "http.get",
                    "params": {"url": f"{loopback_server}/admin"},
                    "retry": {"max_attempts": 0},
                }
            ],
        }
        graph_id = api.post("/graphs", json=spec).json()["graph_id"]
        # WHEN a run fetches it
        run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
        run = wait_for_run(api, run_id, timeout=20)
    # THEN the run FAILED with BlockedAddress naming the reason, and the server saw nothing
    assert run["status"] == "FAILED", run
    error = run["nodes"]["fetch"]["error"]
    assert error["code"] == "BlockedAddress"
    assert "loopback" in error["message"]
    assert Target.hits == []
