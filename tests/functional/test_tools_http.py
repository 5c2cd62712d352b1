"""http.get against real loopback servers: allowed only through STEPGRAPH_HTTP_ALLOW_HOSTS, redirects re-checked,
size and time capped, and its output feeding json.pick, text.analyze and chart.bar.

No connection leaves this machine: both servers listen on 127.0.0.1 and every URL names them.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from functions.errors import BlockedAddress, ToolError
from functions.executor.tools import registry
from functions.executor.tools.base import ToolContext
from functions.settings import get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ARTICLE = {
    "id": 1,
    "title": "Step Functions for agents",
    "author": {"name": "Ada"},
    "tags": ["aws", "serverless"],
    "body": "Retries are great. Timeouts are great. Nothing is lost.",
}
PAGE = (
    "<html><head><title>Notes</title><script>var broken = true;</script></head><body>"
    "<h1>Release notes</h1><p>Retries retries retries. Faster and reliable runs!</p>"
    "<p>Timeouts and retries are clear now.</p></body></html>"
)
BOMB = gzip.compress(b"\0" * (8 * 1024 * 1024))


class Site(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: list[str] = []
        self.other_port = 0
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that give up (timeouts, refused certificates) are part of the tests, not errors to print."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Site
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send(302, b"", "text/plain", Location=location)

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        port = self.server.server_address[1]
        if self.path == "/article.json":
            self.send(200, json.dumps(ARTICLE).encode(), "application/json")
        elif self.path == "/page.html":
            self.send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif self.path == "/to-article":
            self.redirect("/article.json")
        elif self.path == "/to-other-port":
            self.redirect(f"http://127.0.0.1:{self.server.other_port}/article.json")
        elif self.path == "/to-localhost":
            self.redirect(f"http://localhost:{port}/article.json")
        elif self.path == "/loop":
            self.redirect("/loop")
        elif self.path == "/big":
            self.send(200, b"x" * (5 * 1024 * 1024 + 1), "text/plain")
        elif self.path == "/bomb":
            self.send(200, BOMB, "text/plain", Content_Encoding="gzip")
        elif self.path == "/slow":
            time.sleep(1.5)
            with contextlib.suppress(OSError):  # the client gave up, as the test wants
                self.send(200, b"late", "text/plain")
        else:
            self.send(404, b'{"error": "not found"}', "application/json")


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    """Two loopback servers: `site` is the one allowed, `other` is never allowed."""
    site, other = Site(), Site()
    site.other_port = other.server_address[1]
    for s in (site, other):
        s.thread.start()
    yield site, other
    for s in (site, other):
        s.shutdown()
        s.server_close()


@pytest.fixture
def site(sites: tuple[Site, Site], monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The allowed server: its host:port is in STEPGRAPH_HTTP_ALLOW_HOSTS, read through the functions' settings."""
    allowed, _ = sites
    monkeypatch.setenv("STEPGRAPH_HTTP_ALLOW_HOSTS", f"example.org, 127.0.0.1:{allowed.server_address[1]}")
    get_settings.cache_clear()
    yield allowed
    get_settings.cache_clear()


def run(tool: str, params: dict[str, Any]) -> dict[str, Any]:
    return registry.get(tool).invoke(params, ToolContext())


def test_fetch_json_from_an_allowed_host_and_pick_fields(site: Site) -> None:
    """GIVEN an allowed loopback host WHEN http.get fetches JSON THEN json.pick reads fields out of its output."""
    fetched = run("http.get", {"url": f"{site.base}/article.json"})
    assert fetched["status_code"] == 200
    assert fetched["json"] == ARTICLE
    assert fetched["headers"]["content-type"] == "application/json"
    picked = run("json.pick", {"data": fetched["json"], "fields": {"title": "title", "by": "author.name"}})
    assert picked == {"title": "Step Functions for agents", "by": "Ada"}


def test_fetch_analyze_chart(site: Site) -> None:
    """GIVEN an HTML page WHEN fetched, analyzed and charted THEN the chart shows the page's top words."""
    fetched = run("http.get", {"url": f"{site.base}/page.html"})
    analysis = run("text.analyze", {"text": fetched["text"], "strip_html": True, "top": 3})
    assert analysis["top_words"] == [["retries", 4], ["notes", 2], ["clear", 1]]
    assert "broken" not in fetched["text"].split("<body>")[1]
    chart = run("chart.bar", {"series": analysis["top_words"], "title": "Top words"})
    assert chart["data"]["values"][0] == {"label": "retries", "value": 4.0}


def test_loopback_is_refused_without_the_allow_list(sites: tuple[Site, Site], monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN no allow list WHEN http.get targets a live loopback server THEN BlockedAddress and no request arrives."""
    site, _ = sites
    monkeypatch.delenv("STEPGRAPH_HTTP_ALLOW_HOSTS", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(BlockedAddress, match=r"loopback address 127\.0\.0\.1"):
            run("http.get", {"url": f"{site.base}/article.json"})
    finally:
        get_settings.cache_clear()
    assert site.hits == []


def test_redirect_within_the_allowed_host_is_followed(site: Site) -> None:
    """GIVEN a redirect to the same allowed host WHEN fetched THEN the final URL and the hop are reported."""
    fetched = run("http.get", {"url": f"{site.base}/to-article"})
    assert fetched["json"] == ARTICLE
    assert fetched["redirects"] == [f"{site.base}/article.json"]
    assert site.hits == ["/to-article", "/article.json"]


def test_redirects_to_hosts_not_allowed_are_refused(site: Site, sites: tuple[Site, Site]) -> None:
    """GIVEN redirects to another loopback port and to `localhost` WHEN fetched THEN both are refused unsent."""
    _, other = sites
    with pytest.raises(BlockedAddress, match=f"127.0.0.1:{other.server_address[1]}|loopback"):
        run("http.get", {"url": f"{site.base}/to-other-port"})
    with pytest.raises(BlockedAddress, match="localhost"):
        run("http.get", {"url": f"{site.base}/to-localhost"})
    assert other.hits == []
    assert site.hits == ["/to-other-port", "/to-localhost"]


def test_redirect_loops_end(site: Site) -> None:
    """GIVEN a redirect to itself WHEN fetched THEN TooManyRedirects after 1 + 5 requests."""
    with pytest.raises(ToolError) as info:
        run("http.get", {"url": f"{site.base}/loop"})
    assert info.value.code == "TooManyRedirects"
    assert len(site.hits) == 6


@pytest.mark.parametrize("path", ["/big", "/bomb"])
def test_bodies_over_five_megabytes_are_refused(site: Site, path: str) -> None:
    """GIVEN a body over 5 MB, plain or gzip-inflated WHEN fetched THEN ResponseTooLarge."""
    with pytest.raises(ToolError) as info:
        run("http.get", {"url": f"{site.base}{path}"})
    assert info.value.code == "ResponseTooLarge"


def test_slow_responses_time_out(site: Site) -> None:
    """GIVEN a server slower than timeout_seconds WHEN fetched THEN HttpTimeout (a code Retry can match)."""
    with pytest.raises(ToolError) as info:
        run("http.get", {"url": f"{site.base}/slow", "timeout_seconds": 0.3})
    assert info.value.code == "HttpTimeout"


def test_a_closed_port_is_a_connection_error(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN an allowed host:port where nothing listens WHEN fetched THEN HttpConnectionError."""
    probe = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = probe.server_address[1]
    probe.server_close()
    monkeypatch.setenv("STEPGRAPH_HTTP_ALLOW_HOSTS", f"127.0.0.1:{port}")
    get_settings.cache_clear()
    with pytest.raises(ToolError) as info:
        run("http.get", {"url": f"http://127.0.0.1:{port}/"})
    assert info.value.code == "HttpConnectionError"


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for DNS name ``name`` only (no IP address), and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[Site, Path]]:
    """A loopback HTTPS server whose certificate names only `pinned.test`; yields it and the CA file to trust."""
    cert_file, key_file = self_signed(tmp_path, "pinned.test")
    server = Site()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.thread.start()
    yield server, cert_file
    server.shutdown()
    server.server_close()


def pinned_resolver(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
    """`pinned.test` is this machine; anything else does not exist (no DNS query is made)."""
    if host != "pinned.test":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def test_https_connects_to_the_pinned_address_and_verifies_the_original_name(tls_site: tuple[Site, Path]) -> None:
    """GIVEN an HTTPS host resolved once to 127.0.0.1 WHEN fetched THEN TLS checks the certificate against the
    host name (sent as SNI) while the socket goes to the checked address; a CA that does not match fails."""
    from functions.executor.tools.http_get import Params, fetch

    server, ca_file = tls_site
    port = server.server_address[1]
    trusted = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(ca_file)))
    out = fetch(
        Params(url=f"https://pinned.test:{port}/article.json"),
        ("pinned.test",),
        resolver=pinned_resolver,
        transport=trusted,
    )
    assert out.status_code == 200 and out.json_ == ARTICLE
    assert out.url == f"https://pinned.test:{port}/article.json"
    assert server.hits == ["/article.json"]

    untrusted = httpx.HTTPTransport(verify=ssl.create_default_context())  # the system CAs do not know this cert
    with pytest.raises(ToolError, match="CERTIFICATE_VERIFY_FAILED") as info:
        fetch(
            Params(url=f"https://pinned.test:{port}/"), ("pinned.test",), resolver=pinned_resolver, transport=untrusted
        )
    assert info.value.code == "HttpConnectionError"
    with pytest.raises(BlockedAddress, match=r"refused pinned\.test \(resolves to 127\.0\.0\.1\)"):  # not listed
        fetch(Params(url=f"https://pinned.test:{port}/"), (), resolver=pinned_resolver, transport=trusted)
