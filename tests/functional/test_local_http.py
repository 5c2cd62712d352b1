"""The local API over real HTTP on loopback (the server ``make dev`` runs): requests run concurrently, and the
API Gateway shim reads bodies, lengths, paths and media types as API Gateway would."""

from __future__ import annotations

import json
import socket
import threading
from typing import TYPE_CHECKING, Any

import httpx
import pytest

import functions.api.graphs_service as graphs_service
from local.server import api_server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from local.cloud import LocalCloud

SPEC = {"name": "http", "nodes": [{"id": "a", "tool": "util.echo", "params": {"x": 1}}], "edges": []}
BAD_SPEC = {"name": "http", "nodes": [{"id": "a", "tool": "no.such.tool"}], "edges": []}
WAIT = 20.0
"""How long a test waits for something that should be immediate; only reached when the behaviour is broken."""


@pytest.fixture
def base_url(cloud: LocalCloud) -> Iterator[str]:
    """The API served by ``local.server``'s HTTP server on a free loopback port."""
    server = api_server(cloud.app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="api-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


@pytest.fixture
def http(base_url: str, cloud: LocalCloud) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers={"x-api-key": cloud.api_key}, timeout=WAIT) as client:
        yield client


def raw_request(base_url: str, request: bytes) -> tuple[bytes, bool]:
    """Send bytes on a new connection; the response, and whether the server closed the connection after it."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += sock.recv(65536)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        return head + b"\r\n\r\n" + rest, closed


# ---- no request blocks another ------------------------------------------------------------------------------


def test_health_and_other_requests_answer_while_validations_are_in_flight(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN validation that holds each request inside it until the test lets go (a slow validation, made
    # deterministic: the real validator runs once released)
    arrived = threading.Semaphore(0)
    release = threading.Event()
    real_validate = graphs_service.validate

    def held_validate(*args: Any, **kwargs: Any) -> Any:
        arrived.release()
        release.wait(WAIT)
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(graphs_service, "validate", held_validate)
    answers: dict[str, httpx.Response] = {}

    def validate(name: str, spec: dict[str, Any]) -> None:
        answers[name] = http.post("/graphs/validate", json=spec)

    slow = [
        threading.Thread(target=validate, args=("good", SPEC)),
        threading.Thread(target=validate, args=("bad", BAD_SPEC)),
    ]
    try:
        for thread in slow:
            thread.start()

        # WHEN both validations are in flight at once (each has entered validation; served one at a time,
        # the second could not arrive while the first is held)
        assert arrived.acquire(timeout=WAIT) and arrived.acquire(timeout=WAIT), "validations were not concurrent"

        # THEN /health and another route answer meanwhile
        assert http.get("/health").status_code == 200
        assert http.get("/tools").status_code == 200
        assert not release.is_set() and all(thread.is_alive() for thread in slow)
    finally:
        release.set()
        for thread in slow:
            thread.join(WAIT)

    # AND each held request gets its own answer once released (no request state shared between them)
    assert answers["good"].status_code == 200 and answers["good"].json()["valid"] is True
    assert answers["bad"].status_code == 200 and answers["bad"].json()["valid"] is False
    assert "unknown tool 'no.such.tool'" in answers["bad"].json()["errors"][0]["message"]


# ---- the shim's HTTP ---------------------------------------------------------------------------------------


def test_a_chunked_body_is_read_whole(http: httpx.Client) -> None:
    # WHEN a graph is created with a chunked body (no Content-Length)
    chunks = [b'{"name": "http", ', b'"nodes": [{"id": "a", "tool": "util.echo"}], ', b'"edges": []}']
    created = http.post("/graphs", content=iter(chunks), headers={"content-type": "application/json"})

    # THEN the function saw the whole body
    assert created.request.headers.get("transfer-encoding") == "chunked"
    assert created.status_code == 201, created.text
    assert http.get(f"/graphs/{created.json()['graph_id']}").json()["spec"]["nodes"][0]["id"] == "a"


def test_a_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    chunk = b" " * (1024 * 1024)
    reply = http.post("/graphs", content=iter([chunk] * 11), headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert reply.json() == {"message": "Request Too Long"}


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", "+3"])
def test_a_malformed_or_negative_content_length_is_400_and_the_connection_closes(base_url: str, length: str) -> None:
    # WHEN a request declares a Content-Length that is not a number of bytes
    request = (
        f"POST /graphs/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n{{}}"
    ).encode()
    response, closed = raw_request(base_url, request)

    # THEN 400 with a JSON body naming it, at once, and the server closes the connection (nothing held)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), response
    assert b"application/json" in head.lower()
    assert body == f'{{"message": "Bad Request: malformed Content-Length {length!r}"}}'.encode()
    assert closed


def test_paths_are_percent_decoded_once_as_utf8(http: httpx.Client) -> None:
    # WHEN ids are sent percent-encoded: an escaped '%', and UTF-8 bytes
    escaped_percent = http.get("/graphs/g_%2541")
    utf8 = http.get("/graphs/caf%C3%A9")

    # THEN the API sees 'g_%41' (not 'g_A') and 'café' (not 'cafÃ©')
    assert escaped_percent.status_code == 404
    assert escaped_percent.json()["error"]["message"] == "no graph 'g_%41'"
    assert utf8.status_code == 404
    assert utf8.json()["error"]["message"] == "no graph 'café'"


def test_a_path_that_is_not_utf8_is_400(base_url: str) -> None:
    response, _ = raw_request(base_url, b"GET /graphs/%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400")
    assert response.endswith(b'{"message": "Bad Request: the path is not UTF-8"}')


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "Application/Json; charset=UTF-8"])
def test_media_types_match_case_insensitively(http: httpx.Client, content_type: str) -> None:
    reply = http.post("/graphs", content=json.dumps(SPEC).encode(), headers={"content-type": content_type})
    assert reply.status_code == 201, reply.text
