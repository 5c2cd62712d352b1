"""The executor through the local cloud: what a user sees of attempts, events, large outputs and foreach.

Graphs are created and run through the local API; the state machines run in moto and invoke the executor
in-process. Assertions are on ``GET /runs/{id}`` and ``GET /runs/{id}/events``, as a client reads them.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from functional_support import run_graph

from local.cloud import LocalCloud
from local.fixture_server import FixtureServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import httpx

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def all_events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """Every event of the run, following the cursor 5 at a time."""
    events: list[dict[str, Any]] = []
    url = f"/runs/{run_id}/events?limit=5"
    while True:
        page = api.get(url)
        assert page.status_code == 200, page.text
        body = page.json()
        events += body["events"]
        if not body["next"]:
            return events
        url = f"/runs/{run_id}/events?limit=5&after={body['next']}"


def test_each_attempt_of_a_retried_node_is_recorded_once(api: httpx.Client) -> None:
    # GIVEN a node that fails twice with a named error, then succeeds (two retries, 1 s apart)
    spec = {
        "name": "flaky",
        "nodes": [
            {
                "id": "flaky",
                "tool": "util.fail",
                "params": {"failures": 2, "error": "UpstreamBusy", "output": {"ok": True}},
                "retry": {"max_attempts": 2, "interval_seconds": 1, "backoff_rate": 1.0},
            }
        ],
        "edges": [],
    }

    # WHEN it runs
    run = run_graph(api, spec, {})

    # THEN the run succeeds after three attempts, with the last error cleared
    assert run["status"] == "SUCCEEDED", run
    flaky = run["nodes"]["flaky"]
    assert (flaky["status"], flaky["attempts"], flaky["output"], flaky["error"]) == ("SUCCEEDED", 3, {"ok": True}, None)
    # AND the event log tells each attempt exactly once, the tool's log lines included, in order
    node_events = [(e["type"], e["attempt"]) for e in all_events(api, run["run_id"]) if e["node"] == "flaky"]
    assert node_events == [
        ("NODE_STARTED", 1),
        ("LOG", 1),
        ("NODE_RETRYING", 1),
        ("NODE_STARTED", 2),
        ("LOG", 2),
        ("NODE_RETRYING", 2),
        ("NODE_STARTED", 3),
        ("NODE_SUCCEEDED", 3),
    ]


def test_a_failed_node_reports_the_tool_error_code_and_message(api: httpx.Client) -> None:
    # GIVEN a node that always fails with UpstreamDown and may not retry
    spec = {
        "name": "fails",
        "nodes": [
            {
                "id": "boom",
                "tool": "util.fail",
                "params": {"failures": 99, "error": "UpstreamDown", "message": "the upstream said no"},
                "retry": {"max_attempts": 0},
            }
        ],
        "edges": [],
    }

    # WHEN it runs
    run = run_graph(api, spec, {})

    # THEN the run fails with the tool's error; the node's error is clean (no traceback)
    assert run["status"] == "FAILED", run
    boom = run["nodes"]["boom"]
    assert boom["status"] == "FAILED" and boom["attempts"] == 1
    assert boom["error"] == {"code": "UpstreamDown", "message": "the upstream said no (attempt 1 of 99 failing)"}
    assert run["error"]["code"] == "UpstreamDown"
    assert "Traceback" not in json.dumps(run)
    types = [e["type"] for e in all_events(api, run["run_id"]) if e["node"] == "boom"]
    assert types.count("NODE_FAILED") == 1 and "NODE_SUCCEEDED" not in types


@pytest.fixture
def big_document(tmp_path: Path) -> Iterator[tuple[FixtureServer, dict[str, Any]]]:
    """A fixture server serving a JSON document of about 4.5 MB."""
    doc = {"title": "big", "rows": [{"id": i, "text": f"row {i} " + "x" * 40} for i in range(60_000)]}
    (tmp_path / "big.json").write_text(json.dumps(doc))
    with FixtureServer(port=0, root=tmp_path) as server:
        yield server, doc


def test_a_five_megabyte_output_does_not_fail_the_run(big_document: tuple[FixtureServer, dict[str, Any]]) -> None:
    server, doc = big_document
    # GIVEN a graph that fetches a ~4.5 MB JSON document (output: json and text, ~9 MB) then picks from it
    spec = {
        "name": "big",
        "nodes": [
            {"id": "fetch", "tool": "http.get", "params": {"url": "{{ input.url }}"}, "timeout_seconds": 60},
            {
                "id": "pick",
                "tool": "json.pick",
                "params": {"data": "{{ fetch.json }}", "fields": {"title": "title", "last": "rows[-1].id"}},
            },
        ],
        "edges": [{"from": "fetch", "to": "pick", "when": "fetch.status_code == 200"}],
    }
    with (
        LocalCloud(env={"STEPGRAPH_HTTP_ALLOW_HOSTS": server.allow_host}) as cloud,
        cloud.client(api_key=cloud.api_key) as api,
    ):
        # WHEN it runs
        run = run_graph(api, spec, {"url": f"{server.url}/big.json"}, timeout=120)

        # THEN the run succeeds and the next node read the offloaded output
        assert run["status"] == "SUCCEEDED", run.get("error")
        assert run["nodes"]["pick"]["output"] == {"title": "big", "last": 59_999}
        # AND the API keeps its response under Lambda's 6 MB: the megabyte fields are null, with their sizes
        fetched = run["nodes"]["fetch"]["output"]
        assert fetched["status_code"] == 200
        omitted = run["nodes"]["fetch"]["output_omitted"]
        assert omitted["fields"] and {path.split(".")[0] for path in omitted["fields"]} <= {"json", "text"}
        assert omitted["bytes"] > len(json.dumps(doc))
        assert len(json.dumps(run)) < 3 * 1024 * 1024


def test_foreach_outputs_keep_item_order_and_the_node_is_recorded_once(api: httpx.Client) -> None:
    # GIVEN a foreach node over five items, two at a time
    spec = {
        "name": "each",
        "nodes": [
            {
                "id": "each",
                "tool": "util.echo",
                "foreach": "{{ input.items }}",
                "params": {"value": "{{ item }}", "tag": "n{{ item }}"},
                "max_concurrency": 2,
            }
        ],
        "edges": [],
    }

    # WHEN it runs
    run = run_graph(api, spec, {"items": [5, 4, 3, 2, 1]})

    # THEN the output lists item results in item order, and the node has one start and one success
    assert run["status"] == "SUCCEEDED", run
    each = run["nodes"]["each"]
    assert each["output"] == [{"value": v, "tag": f"n{v}"} for v in (5, 4, 3, 2, 1)]
    types = [e["type"] for e in all_events(api, run["run_id"]) if e["node"] == "each"]
    assert types == ["NODE_STARTED", "NODE_SUCCEEDED"]


def test_an_optional_node_that_times_out_is_failed_and_the_run_goes_on(api: httpx.Client) -> None:
    # GIVEN an optional node that sleeps past its 1 s timeout, feeding a node that reads it
    spec = {
        "name": "slow",
        "nodes": [
            {
                "id": "slow",
                "tool": "util.sleep",
                "params": {"seconds": 3},
                "timeout_seconds": 1,
                "optional": True,
                "retry": {"max_attempts": 0},
            },
            {"id": "after", "tool": "util.echo", "params": {"slow": "{{ slow }}"}},
        ],
        "edges": [{"from": "slow", "to": "after"}],
    }

    # WHEN it runs
    run = run_graph(api, spec, {})

    # THEN the run succeeds; the slow node is FAILED with States.Timeout, once, and its output is null
    assert run["status"] == "SUCCEEDED", run
    slow = run["nodes"]["slow"]
    assert slow["status"] == "FAILED" and slow["error"]["code"] == "States.Timeout"
    assert run["nodes"]["after"]["output"] == {"slow": None}
    time.sleep(2.5)  # the tool's thread ends after the run; it must not change the record
    run = api.get(f"/runs/{run['run_id']}").json()
    assert run["nodes"]["slow"]["status"] == "FAILED"
    slow_events = [e for e in all_events(api, run["run_id"]) if e["node"] == "slow"]
    types = [e["type"] for e in slow_events]
    assert types.count("NODE_FAILED") == 1 and "NODE_SUCCEEDED" not in types, slow_events


def test_a_user_lambda_node_is_recorded_like_any_node(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a user's own function, registered in the local cloud, used as an agent between two tools
    calls: list[Any] = []

    def agent(event: Any, context: Any) -> Any:
        calls.append(event)
        return {"answer": event["question"].upper(), "n": event["n"] * 2}

    cloud.register("stepgraph-user-agent", agent)
    spec = {
        "name": "agent",
        "nodes": [
            {
                "id": "ask",
                "tool": "lambda:stepgraph-user-agent",
                "params": {"question": "{{ input.q }}", "n": "{{ input.n }}"},
            },
            {"id": "after", "tool": "util.echo", "params": {"got": "{{ ask.answer }}"}},
        ],
        "edges": [{"from": "ask", "to": "after"}],
    }

    # WHEN it runs
    run = run_graph(api, spec, {"q": "why", "n": 21})

    # THEN the function got the resolved params, its output is the node's, recorded once
    assert run["status"] == "SUCCEEDED", run
    assert calls == [{"question": "why", "n": 21}]
    ask = run["nodes"]["ask"]
    assert (ask["status"], ask["attempts"], ask["output"]) == ("SUCCEEDED", 1, {"answer": "WHY", "n": 42})
    assert run["nodes"]["after"]["output"] == {"got": "WHY"}
    types = [e["type"] for e in all_events(api, run["run_id"]) if e["node"] == "ask"]
    assert types == ["NODE_STARTED", "NODE_SUCCEEDED"]


def test_a_failing_user_lambda_fails_the_node_with_its_own_error(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a user's function that raises
    def agent(event: Any, context: Any) -> Any:
        raise ValueError("the model refused")

    cloud.register("stepgraph-user-broken", agent)
    spec = {
        "name": "broken",
        "edges": [],
        "nodes": [{"id": "ask", "tool": "lambda:stepgraph-user-broken", "params": {}, "retry": {"max_attempts": 0}}],
    }

    # WHEN it runs
    run = run_graph(api, spec, {})

    # THEN the run and the node fail with the function's error type and message
    assert run["status"] == "FAILED", run
    assert run["nodes"]["ask"]["status"] == "FAILED"
    assert run["nodes"]["ask"]["error"] == {"code": "ValueError", "message": "the model refused"}
    assert run["error"]["code"] == "ValueError"
