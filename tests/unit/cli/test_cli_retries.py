"""The CLI's HTTP client retries what is safe to retry (throttling, unreachable, brief outages) and nothing else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tenacity import wait_none

from stepgraph_cli.client import Api
from stepgraph_cli.errors import ApiError, CliError


def api_answering(*answers: int | type[Exception]) -> tuple[Api, list[httpx.Request]]:
    """An Api on a transport that gives ``answers`` in turn (a status code or an exception to raise)."""
    seen: list[httpx.Request] = []
    pending = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = pending.pop(0)
        if isinstance(answer, int):
            body: dict[str, Any] = {"ok": True} if answer < 400 else {"error": {"code": "x", "message": f"{answer}"}}
            return httpx.Response(answer, json=body)
        raise answer("injected", request=request)

    client = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(handle))
    return Api(client, attempts=4, wait=wait_none()), seen


def test_throttled_requests_are_retried_until_they_pass() -> None:
    # GIVEN an API that throttles twice, then answers
    api, seen = api_answering(429, 429, 200)
    # WHEN a write without a key is sent
    answer = api.post("/graphs", json={})
    # THEN it was sent three times and the answer is the last one
    assert answer == {"ok": True}
    assert len(seen) == 3


def test_an_outage_is_retried_for_reads_and_keyed_writes_only() -> None:
    # GIVEN an API briefly unavailable
    api, seen = api_answering(503, 200)
    assert api.get("/runs") == {"ok": True}
    assert len(seen) == 2
    api, seen = api_answering(503, 200)
    assert api.post("/graphs/g/runs", json={}, headers={"Idempotency-Key": "k"}) == {"ok": True}
    assert len(seen) == 2
    # WHEN a write without a key meets the same outage
    api, seen = api_answering(503, 200)
    with pytest.raises(ApiError, match="503") as raised:
        api.post("/graphs", json={})
    # THEN it is not repeated (it may have been done): the user sees the 503
    assert raised.value.status == 503
    assert len(seen) == 1


def test_retries_stop_after_the_attempts_with_the_last_answer() -> None:
    api, seen = api_answering(429, 429, 429, 429, 200)
    with pytest.raises(ApiError, match="429"):
        api.get("/runs")
    assert len(seen) == 4


def test_an_unreachable_api_is_retried_then_explained() -> None:
    # GIVEN nothing listening, then something
    api, seen = api_answering(httpx.ConnectError, 200)
    assert api.get("/health") == {"ok": True}
    # WHEN it never comes up
    api, seen = api_answering(*[httpx.ConnectError] * 4)
    # THEN the user is told where the CLI looked and what to do
    with pytest.raises(CliError, match=r"cannot reach the API at http://api\.test.*make dev"):
        api.get("/health")
    assert len(seen) == 4


def test_a_read_timeout_repeats_a_read_but_never_an_unkeyed_write() -> None:
    api, seen = api_answering(httpx.ReadTimeout, 200)
    assert api.get("/runs/r_1") == {"ok": True}
    api, seen = api_answering(httpx.ReadTimeout, 200)
    with pytest.raises(CliError, match="cannot reach the API"):
        api.request("PUT", "/graphs/g", json={})
    assert len(seen) == 1


def test_client_errors_are_not_retried() -> None:
    api, seen = api_answering(404, 200)
    with pytest.raises(ApiError, match="404"):
        api.get("/runs/r_missing")
    assert len(seen) == 1
