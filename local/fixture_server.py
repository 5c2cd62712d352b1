"""A small loopback HTTP server for the examples that fetch URLs, so they run with no internet.

It serves the files under ``examples/fixtures/`` (``GET /articles/1.json``, ``GET /texts/step-functions.txt``)
with a content type from the extension. ``http.get`` refuses loopback addresses unless they are listed in
``STEPGRAPH_HTTP_ALLOW_HOSTS``; :func:`start_fixture_server` adds its own ``127.0.0.1:<port>`` there.

``python -m local.fixture_server [--port 8765]`` serves it alone; ``local.server`` (``make dev``) can start it
with :func:`start_fixture_server`.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

FIXTURES = Path(__file__).resolve().parents[1] / "examples" / "fixtures"
DEFAULT_PORT = 8765
ALLOW_ENV = "STEPGRAPH_HTTP_ALLOW_HOSTS"
CONTENT_TYPES = {".json": "application/json", ".txt": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8"}


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD of files under the server's root; nothing else, nothing outside it."""

    server: FixtureHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        root = self.server.root
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        target = (root / relative).resolve()
        if relative == "" or not target.is_relative_to(root) or not target.is_file():
            self._send(HTTPStatus.NOT_FOUND, b'{"error": "not found"}\n', "application/json", body)
            return
        content_type = CONTENT_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "text/plain"
        self._send(HTTPStatus.OK, target.read_bytes(), content_type, body)

    def _send(self, status: HTTPStatus, data: bytes, content_type: str, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class FixtureHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, verbose: bool = False) -> None:
        super().__init__(address, _Handler)
        self.root = root.resolve()
        self.verbose = verbose


class FixtureServer:
    """The fixture server on a loopback port (0: any free port), in a daemon thread; a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", root: Path = FIXTURES, verbose: bool = False) -> None:
        self.httpd = FixtureHTTPServer((host, port), root, verbose)
        self.host, self.port = host, int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fixture-server", daemon=True)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8765``."""
        return f"http://{self.host}:{self.port}"

    @property
    def allow_host(self) -> str:
        """The ``host:port`` entry ``STEPGRAPH_HTTP_ALLOW_HOSTS`` needs for ``http.get`` to reach this server."""
        return f"{self.host}:{self.port}"

    def start(self) -> FixtureServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FixtureServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def allow_hosts_with(entry: str, current: str | None = None) -> str:
    """``STEPGRAPH_HTTP_ALLOW_HOSTS`` with ``entry`` added once (comma-separated ``host[:port]``)."""
    hosts = [h.strip() for h in (current or "").split(",") if h.strip()]
    return ",".join([*hosts, entry] if entry not in hosts else hosts)


def start_fixture_server(port: int = DEFAULT_PORT, host: str = "127.0.0.1", allow: bool = True) -> str:
    """Start the fixture server for the life of the process and return its URL.

    With ``allow`` its ``host:port`` is added to ``STEPGRAPH_HTTP_ALLOW_HOSTS`` in this process's environment
    (and the functions' cached settings are cleared) so ``http.get`` nodes may fetch from it.
    """
    server = FixtureServer(port, host).start()
    if allow:
        os.environ[ALLOW_ENV] = allow_hosts_with(server.allow_host, os.environ.get(ALLOW_ENV))
        try:
            from functions.settings import get_settings

            get_settings.cache_clear()
        except ImportError:  # pragma: no cover - the functions package ships with the repo
            pass
    return server.url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.fixture_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    server = FixtureServer(args.port, args.host, verbose=True)
    print(f"fixtures of {FIXTURES} on {server.url}; set {ALLOW_ENV}={server.allow_host} for the API", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
