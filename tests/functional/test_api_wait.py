"""``POST /graphs/{id}/runs?wait=S``: the run document when the run ends within S seconds, else 202 as without."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx

QUICK = {"name": "quick", "nodes": [{"id": "a", "tool": "util.echo", "params": {"x": "{{ input.x }}"}}]}
SLOW = {"name": "slow", "nodes": [{"id": "nap", "tool": "util.sleep", "params": {"seconds": 20}}]}
FAILING = {"name": "failing", "nodes": [{"id": "boom", "tool": "util.fail", "params": {"failures": 5}}]}


def create(api: httpx.Client, spec: dict[str, Any]) -> str:
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    return str(created.json()["graph_id"])


def test_a_run_that_ends_within_the_wait_answers_200_with_the_run_document(api: httpx.Client) -> None:
    # GIVEN a graph that ends at once
    graph = create(api, QUICK)

    # WHEN a run is started with ?wait=10
    answer = api.post(f"/graphs/{graph}/runs", params={"wait": 10}, json={"input": {"x": 7}})

    # THEN the answer is the finished run, as GET /runs/{id} serves it
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["status"] == "SUCCEEDED"
    assert run["nodes"]["a"]["output"] == {"x": 7}
    assert run == api.get(f"/runs/{run['run_id']}").json()


def test_a_failed_run_within_the_wait_is_also_answered_whole(api: httpx.Client) -> None:
    graph = create(api, FAILING)
    answer = api.post(f"/graphs/{graph}/runs", params={"wait": 10}, json={"input": {}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "FAILED"
    assert answer.json()["nodes"]["boom"]["error"]["code"] == "InjectedFailure"


def test_a_run_still_going_after_the_wait_answers_202_then(api: httpx.Client) -> None:
    # GIVEN a graph that takes twenty seconds
    graph = create(api, SLOW)

    # WHEN a run is started with ?wait=1
    began = time.monotonic()
    answer = api.post(f"/graphs/{graph}/runs", params={"wait": 1}, json={"input": {}})
    waited = time.monotonic() - began

    # THEN it answers 202 as without wait, once the second has passed
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "RUNNING"
    assert set(answer.json()) == {"run_id", "graph_id", "version", "execution_arn", "status", "console_url", "trigger"}
    assert answer.json()["trigger"] == {"type": "api"}
    assert waited >= 1.0


@pytest.mark.parametrize("wait", ["26", "-1", "soon"])
def test_a_wait_outside_0_to_25_seconds_is_refused(api: httpx.Client, wait: str) -> None:
    graph = create(api, QUICK)
    answer = api.post(f"/graphs/{graph}/runs", params={"wait": wait}, json={"input": {"x": 1}})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["loc"].endswith("wait")
    assert api.get("/runs", params={"graph_id": graph}).json()["runs"] == []  # nothing was started


def test_the_idempotency_key_still_starts_one_run(api: httpx.Client) -> None:
    # GIVEN a run started with ?wait and an Idempotency-Key
    graph = create(api, QUICK)
    headers = {"Idempotency-Key": "wait-1"}
    first = api.post(f"/graphs/{graph}/runs", params={"wait": 10}, json={"input": {"x": 1}}, headers=headers)

    # WHEN the same request is retried
    again = api.post(f"/graphs/{graph}/runs", params={"wait": 10}, json={"input": {"x": 1}}, headers=headers)

    # THEN both answer the same finished run, and only one run exists
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json()["run_id"] == again.json()["run_id"]
    assert len(api.get("/runs", params={"graph_id": graph}).json()["runs"]) == 1
