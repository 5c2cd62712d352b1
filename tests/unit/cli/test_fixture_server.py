"""The fixture server the URL-fetching examples use: serves examples/fixtures on loopback, nothing else."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import httpx

from functions.settings import get_settings
from local import fixture_server
from local.fixture_server import FixtureServer, allow_hosts_with

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_serves_fixture_files_with_their_content_type() -> None:
    # GIVEN the fixture server on a free loopback port
    with FixtureServer(port=0) as server, httpx.Client(base_url=server.url) as client:
        # WHEN the example article and text are fetched
        article = client.get("/articles/1.json")
        text = client.get("/texts/step-functions.txt")
        head = client.head("/articles/1.json")

    # THEN they are the files under examples/fixtures, typed by extension
    assert article.status_code == 200
    assert article.headers["content-type"] == "application/json"
    assert article.json() == json.loads((fixture_server.FIXTURES / "articles" / "1.json").read_text())
    assert text.headers["content-type"].startswith("text/plain")
    assert "Step Functions" in text.text
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(article.content)


def test_nothing_outside_the_fixtures_is_served(tmp_path: Path) -> None:
    # GIVEN a server rooted at a folder with a secret beside it
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("secret")
    with FixtureServer(port=0, root=root) as server, httpx.Client(base_url=server.url) as client:
        # WHEN paths escape the root, or name nothing
        escaped = client.get("/%2e%2e/secret.txt")
        missing = client.get("/nope.json")
        index = client.get("/")

    # THEN each is a 404
    assert (escaped.status_code, missing.status_code, index.status_code) == (404, 404, 404)
    assert "secret" not in escaped.text


def test_start_fixture_server_allows_its_host_for_http_get(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an allow list that already names another host
    monkeypatch.setenv("STEPGRAPH_HTTP_ALLOW_HOSTS", "example.test")
    get_settings.cache_clear()

    # WHEN the fixture server is started as local.server would start it
    url = fixture_server.start_fixture_server(port=0)

    # THEN it answers, and the functions' settings now allow both hosts
    host = url.removeprefix("http://")
    assert httpx.get(f"{url}/articles/index.json").json()["articles"][0]["id"] == 1
    assert os.environ["STEPGRAPH_HTTP_ALLOW_HOSTS"] == f"example.test,{host}"
    assert get_settings().http_allow_hosts == ("example.test", host)
    get_settings.cache_clear()


def test_allow_list_entries_are_added_once() -> None:
    assert allow_hosts_with("127.0.0.1:8765", None) == "127.0.0.1:8765"
    assert allow_hosts_with("127.0.0.1:8765", "a, 127.0.0.1:8765") == "a,127.0.0.1:8765"
