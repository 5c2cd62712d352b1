"""Cached nodes in the local cloud: a node with ``cache`` reuses an earlier run's output instead of running its tool.

The tool's side effect is observable: an HTTP server counting the requests ``http.get`` makes, a user Lambda
counting its invocations, a registered tool answering with a fresh nonce each time it really runs.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from functions.settings import get_settings
from functions.store.records import Records
from tests.functional.functional_support import run_graph, wait_for_run

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from local.cloud import LocalCloud

BIG = 20_000
"""Bytes of the ``/big`` body: over the 8 KiB inline limit, so the output's ``text`` is offloaded."""


class Counter(ThreadingHTTPServer):
    """Answers ``{"path", "n"}`` where ``n`` counts the requests it got; ``/big`` adds a large ``pad``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[str] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Counter

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits.append(self.path)
            n = len(self.server.hits)
        body: dict[str, Any] = {"path": self.path, "n": n}
        if self.path.startswith("/big"):
            body["pad"] = "x" * BIG
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    """A counting server that ``http.get`` may reach (its host:port is allowed)."""
    site = Counter()
    thread = threading.Thread(target=site.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    monkeypatch.setenv("STEPGRAPH_HTTP_ALLOW_HOSTS", f"127.0.0.1:{site.server_address[1]}")
    get_settings.cache_clear()
    yield site
    site.shutdown()
    site.server_close()
    get_settings.cache_clear()


def fetch_graph(url: str, ttl: int | None = 600, *, node: str = "fetch", name: str = "cached-fetch") -> dict[str, Any]:
    spec_node: dict[str, Any] = {"id": node, "tool": "http.get", "params": {"url": url}}
    if ttl is not None:
        spec_node["cache"] = {"ttl_seconds": ttl}
    return {"name": name, "nodes": [spec_node]}


def events_of(api: httpx.Client, cloud: LocalCloud, run_id: str) -> list[dict[str, Any]]:
    assert cloud.drain_events(10)
    return list(api.get(f"/runs/{run_id}/events").json()["events"])


def test_a_second_run_reuses_the_output_without_running_the_tool(
    cloud: LocalCloud, api: httpx.Client, server: Counter
) -> None:
    # GIVEN a graph whose node fetches a URL, cached for ten minutes, and one run of it
    spec = fetch_graph(f"{server.base}/a")
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    graph_id = created.json()["graph_id"]
    first = wait_for_run(api, api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"])
    assert first["status"] == "SUCCEEDED", first
    assert first["nodes"]["fetch"]["output"]["json"]["n"] == 1
    assert first["nodes"]["fetch"]["cached"] is False

    # WHEN the graph runs again
    second = wait_for_run(api, api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"])

    # THEN the server saw one request: the second run's node has the first run's output, and says it is cached
    assert second["status"] == "SUCCEEDED", second
    assert server.hits == ["/a"]
    node = second["nodes"]["fetch"]
    assert node["output"] == first["nodes"]["fetch"]["output"]
    assert node["cached"] is True
    assert node["cached_from"]["run_id"] == first["run_id"]
    # AND its NODE_SUCCEEDED event says so too (events come from the table's stream)
    succeeded = [e for e in events_of(api, cloud, second["run_id"]) if e["type"] == "NODE_SUCCEEDED"]
    assert len(succeeded) == 1 and succeeded[0]["cached"] is True, succeeded
    assert "from the cache" in succeeded[0]["message"]
    # AND every request the functions made (the lookup's Query on the index too) is within the template's IAM
    assert cloud.iam.denials == []
    first_events = [e for e in events_of(api, cloud, first["run_id"]) if e["type"] == "NODE_SUCCEEDED"]
    assert "cached" not in first_events[0]


def test_a_hit_across_graph_versions_and_graphs_with_the_same_node(api: httpx.Client, server: Counter) -> None:
    # GIVEN version 1 of a graph, run once
    url = f"{server.base}/shared"
    created = api.post("/graphs", json=fetch_graph(url))
    graph_id = created.json()["graph_id"]
    first = wait_for_run(api, api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"])
    assert first["status"] == "SUCCEEDED"

    # WHEN version 2 (another node added after it) runs, and another graph naming its node otherwise
    v2 = fetch_graph(url)
    v2["nodes"].append({"id": "after", "tool": "util.echo", "params": {"n": "{{ fetch.json.n }}"}})
    v2["edges"] = [{"from": "fetch", "to": "after"}]
    updated = api.put(f"/graphs/{graph_id}", json=v2)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    second = wait_for_run(api, api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"])
    other = run_graph(api, fetch_graph(url, 60, node="get", name="another-graph"))

    # THEN both reuse version 1's output: the server was asked once
    assert second["version"] == 2 and second["status"] == "SUCCEEDED", second
    assert second["nodes"]["fetch"]["cached"] is True
    assert second["nodes"]["after"]["output"] == {"n": 1}
    assert other["nodes"]["get"]["cached"] is True
    assert other["nodes"]["get"]["output"]["json"] == {"path": "/shared", "n": 1}
    assert server.hits == ["/shared"]


def test_different_params_or_no_cache_miss(api: httpx.Client, server: Counter) -> None:
    # GIVEN one run fetching /p?x=1
    assert run_graph(api, fetch_graph(f"{server.base}/p?x=1"))["status"] == "SUCCEEDED"
    # WHEN a run fetches /p?x=2 (other params), and a run of the same node without cache
    changed = run_graph(api, fetch_graph(f"{server.base}/p?x=2"))
    uncached = run_graph(api, fetch_graph(f"{server.base}/p?x=1", ttl=None))
    # THEN each ran its tool
    assert changed["nodes"]["fetch"]["cached"] is False
    assert uncached["nodes"]["fetch"]["cached"] is False
    assert server.hits == ["/p?x=1", "/p?x=2", "/p?x=1"]
    assert uncached["nodes"]["fetch"]["output"]["json"]["n"] == 3


def test_params_resolved_from_the_input_key_the_cache(api: httpx.Client, server: Counter) -> None:
    # GIVEN a graph whose URL comes from the run's input
    spec = fetch_graph("{{ input.url }}")
    created = api.post("/graphs", json=spec).json()
    runs = []
    # WHEN it runs with /one, /two, then /one again
    for path in ("/one", "/two", "/one"):
        started = api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {"url": f"{server.base}{path}"}})
        runs.append(wait_for_run(api, started.json()["run_id"]))
    # THEN only the third reuses an output: the one made for the same resolved URL
    assert [r["nodes"]["fetch"]["cached"] for r in runs] == [False, False, True]
    assert runs[2]["nodes"]["fetch"]["output"]["json"] == {"path": "/one", "n": 1}
    assert server.hits == ["/one", "/two"]


def test_a_failed_output_is_never_cached(api: httpx.Client) -> None:
    # GIVEN an optional cached node that fails its only attempt
    spec = {
        "name": "fails",
        "nodes": [
            {
                "id": "flaky",
                "tool": "util.fail",
                "params": {"failures": 1, "output": {"ok": True}},
                "optional": True,
                "cache": {"ttl_seconds": 600},
            }
        ],
    }
    first = run_graph(api, spec)
    assert first["nodes"]["flaky"]["status"] == "FAILED", first
    # WHEN the same node runs again
    second = run_graph(api, spec)
    # THEN the tool ran again (it failed again, with its own error): no failure was served from the cache
    node = second["nodes"]["flaky"]
    assert node["status"] == "FAILED" and node["cached"] is False
    assert node["error"]["code"] == "InjectedFailure"


def test_a_cached_output_expires_with_the_ttl(api: httpx.Client, server: Counter) -> None:
    # GIVEN a run of a node cached for one second
    spec = fetch_graph(f"{server.base}/short", ttl=1)
    created = api.post("/graphs", json=spec).json()
    first = wait_for_run(api, api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {}}).json()["run_id"])
    assert first["status"] == "SUCCEEDED"
    # WHEN the next run starts after that second (DynamoDB has not deleted anything: its TTL is lazy)
    time.sleep(1.2)
    second = wait_for_run(api, api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {}}).json()["run_id"])
    # THEN it is a miss: the tool ran again
    assert second["nodes"]["fetch"]["cached"] is False
    assert second["nodes"]["fetch"]["output"]["json"]["n"] == 2
    assert server.hits == ["/short", "/short"]


def test_an_offloaded_output_is_stored_again_under_the_run_that_reuses_it(api: httpx.Client, server: Counter) -> None:
    # GIVEN a run whose cached output is too large to stay inline (its text is stored by reference)
    spec = fetch_graph(f"{server.base}/big")
    first = run_graph(api, spec)
    assert first["status"] == "SUCCEEDED", first
    # WHEN a second run reuses it
    second = run_graph(api, spec)
    # THEN it reads whole, and what the second run holds is its own reference, signed for it
    assert second["nodes"]["fetch"]["cached"] is True
    assert second["nodes"]["fetch"]["output"] == first["nodes"]["fetch"]["output"]
    assert len(second["nodes"]["fetch"]["output"]["json"]["pad"]) == BIG
    stored = Records().get_node(second["run_id"], "fetch", 1)
    assert stored is not None
    refs = [v["$stepgraph_ref"] for v in stored.output.values() if isinstance(v, dict) and "$stepgraph_ref" in v]
    assert refs and all(ref["run_id"] == second["run_id"] for ref in refs), stored.output
    assert server.hits == ["/big"]


def test_a_lambda_node_on_a_published_version_is_cached(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a user function counting its invocations, called at version 3 by a cached node
    calls: list[Any] = []

    def handler(event: Any, context: Any) -> dict[str, Any]:
        calls.append(event)
        return {"calls": len(calls), "got": event}

    cloud.register("stepgraph-user-counter", handler)
    spec = {
        "name": "cached-lambda",
        "nodes": [
            {
                "id": "agent",
                "tool": "lambda:stepgraph-user-counter:3",
                "params": {"q": "{{ input.q }}"},
                "cache": {"ttl_seconds": 600},
            },
            {"id": "after", "tool": "util.echo", "params": {"calls": "{{ agent.calls }}"}},
        ],
        "edges": [{"from": "agent", "to": "after"}],
    }
    created = api.post("/graphs", json=spec)
    assert created.status_code == 201, created.text
    graph_id = created.json()["graph_id"]

    def run(q: str) -> dict[str, Any]:
        started = api.post(f"/graphs/{graph_id}/runs", json={"input": {"q": q}})
        return wait_for_run(api, started.json()["run_id"], cloud=cloud)

    # WHEN it runs with q=a twice, then with q=b
    runs = [run("a"), run("a"), run("b")]

    # THEN the function ran for the first and the third; the second reused the first output and went on
    assert [r["status"] for r in runs] == ["SUCCEEDED"] * 3, runs
    assert [c["q"] for c in calls] == ["a", "b"]
    assert [r["nodes"]["agent"]["cached"] for r in runs] == [False, True, False]
    assert runs[1]["nodes"]["agent"]["output"] == {"calls": 1, "got": {"q": "a"}}
    assert runs[1]["nodes"]["after"]["output"] == {"calls": 1}
    assert runs[2]["nodes"]["after"]["output"] == {"calls": 2}
    # AND the runs' final states hold no cache bookkeeping
    assert all(set(r["state"]) == {"q"} for r in runs)


def test_a_registered_tool_is_cached_per_published_version(api: httpx.Client) -> None:
    # GIVEN a registered tool answering with a fresh nonce each time it really runs
    source = "import uuid\n\n\ndef run(params):\n    return {'nonce': uuid.uuid4().hex, 'text': params['text']}\n"
    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    body = {"name": "acme.nonce", "description": "nonce", "params_schema": schema, "source": source}
    assert api.post("/tools", json=body).status_code == 201
    spec = {
        "name": "nonce",
        "nodes": [{"id": "n", "tool": "acme.nonce", "params": {"text": "hi"}, "cache": {"ttl_seconds": 600}}],
    }
    # WHEN a graph calling it runs twice, then the tool's version 2 is published and the graph updated to it
    first, second = run_graph(api, spec), run_graph(api, spec)
    assert api.put("/tools/acme.nonce", json=body).status_code == 200
    third = run_graph(api, spec)
    # THEN the second run reused the first's output; version 2 ran again
    assert second["nodes"]["n"]["cached"] is True
    assert second["nodes"]["n"]["output"] == first["nodes"]["n"]["output"]
    assert third["nodes"]["n"]["cached"] is False
    assert third["nodes"]["n"]["output"]["nonce"] != first["nodes"]["n"]["output"]["nonce"]


@pytest.mark.parametrize(
    ("node", "loc", "words"),
    [
        ({"tool": "human.approval", "params": {"prompt": "ok?"}}, "nodes[0].cache", "never cached"),
        ({"tool": "lambda:stepgraph-user-agent", "params": {}}, "nodes[0].cache", "published version"),
    ],
)
def test_cache_is_refused_where_it_cannot_hold(api: httpx.Client, node: dict[str, Any], loc: str, words: str) -> None:
    spec = {"name": "refused", "nodes": [{"id": "x", **node, "cache": {"ttl_seconds": 60}}]}
    refused = api.post("/graphs", json=spec)
    assert refused.status_code == 422, refused.text
    details = refused.json()["error"]["details"]
    assert any(d["loc"] == loc and d.get("node") == "x" and words in d["message"] for d in details), details


@pytest.mark.parametrize(
    "cache",
    [
        {},
        {"ttl_seconds": 0},
        {"ttl_seconds": "60"},
        {"ttl_seconds": 1.5},
        {"ttl_seconds": True},
        {"ttl_seconds": 60, "scope": "graph"},
        {"ttl_seconds": 2_592_001},
        60,
    ],
)
def test_a_malformed_cache_is_422(api: httpx.Client, cache: Any) -> None:
    spec = {"name": "bad", "nodes": [{"id": "x", "tool": "util.echo", "cache": cache}]}
    refused = api.post("/graphs", json=spec)
    assert refused.status_code == 422, refused.text
    assert any(d["loc"].startswith("nodes[0].cache") for d in refused.json()["error"]["details"]), refused.text


def test_a_cached_model_answer_costs_nothing_in_the_run_that_reuses_it(api: httpx.Client) -> None:
    # GIVEN a cached llm.converse node (the local cloud's stand-in model answers), run once
    spec = {
        "name": "cached-model",
        "nodes": [{"id": "ask", "tool": "llm.converse", "params": {"prompt": "Say hi"}, "cache": {"ttl_seconds": 600}}],
    }
    first = run_graph(api, spec)
    assert first["status"] == "SUCCEEDED", first
    assert first["usage"]["llm_calls"] == 1
    # WHEN it runs again
    second = run_graph(api, spec)
    # THEN the answer is reused, and the second run's usage counts no model call and no cost
    assert second["nodes"]["ask"]["cached"] is True
    assert second["nodes"]["ask"]["output"] == first["nodes"]["ask"]["output"]
    assert second["usage"] == {"llm_calls": 0, "input_tokens": 0, "output_tokens": 0, "estimated_cost_usd": 0.0}


def test_the_executor_makes_one_read_more_for_a_cached_node_and_none_for_the_others(
    cloud: LocalCloud, api: httpx.Client
) -> None:
    # GIVEN a graph of a plain node then a cached one, with every DynamoDB request of the executor counted
    spec = {
        "name": "costs",
        "nodes": [
            {"id": "plain", "tool": "util.echo", "params": {"v": 1}},
            {"id": "kept", "tool": "util.echo", "params": {"v": "{{ plain.v }}"}, "cache": {"ttl_seconds": 600}},
        ],
        "edges": [{"from": "plain", "to": "kept"}],
    }
    created = api.post("/graphs", json=spec).json()

    def executor_requests(cached: bool) -> list[str]:
        before = len(cloud.iam.calls)
        started = api.post(f"/graphs/{created['graph_id']}/runs", json={"input": {}}).json()
        run = wait_for_run(api, started["run_id"], cloud=cloud)
        assert run["status"] == "SUCCEEDED", run
        assert run["nodes"]["kept"]["cached"] is cached
        calls = cloud.iam.calls[before:]
        return sorted(c.action for c in calls if c.principal == "ExecutorFunction" and c.action.startswith("dynamodb:"))

    # WHEN it runs twice (a miss, then a hit)
    miss, hit = executor_requests(cached=False), executor_requests(cached=True)

    # THEN each node is its two writes, and the cached one adds one Query on the index, hit or miss
    expected = ["dynamodb:Query"] + ["dynamodb:UpdateItem"] * 4
    assert miss == expected
    assert hit == expected


def test_a_websocket_subscriber_is_told_the_output_was_cached(cloud: LocalCloud, api: httpx.Client) -> None:
    from websockets.sync.client import connect

    # GIVEN two runs of a cached node, the second reusing the first's output
    spec = {
        "name": "live-cache",
        "nodes": [{"id": "e", "tool": "util.echo", "params": {"v": 1}, "cache": {"ttl_seconds": 60}}],
    }
    run_graph(api, spec)
    second = run_graph(api, spec)
    assert second["nodes"]["e"]["cached"] is True
    # WHEN a client subscribes to the second run over the WebSocket API
    frames: list[dict[str, Any]] = []
    with connect(cloud.serve_websockets(), additional_headers={"x-api-key": cloud.api_key}, open_timeout=10) as socket:
        socket.send(json.dumps({"action": "subscribe", "run_id": second["run_id"], "after": 0}))
        while not frames or frames[-1]["type"] not in ("run", "error"):
            frames.append(json.loads(socket.recv(timeout=30)))
    # THEN the node's NODE_SUCCEEDED frame says cached, and no other frame does
    events = [f["event"] for f in frames if f["type"] == "event"]
    assert [e["type"] for e in events if e.get("cached")] == ["NODE_SUCCEEDED"], events


@pytest.mark.parametrize("timeout", [None, 850], ids=["items-in-batches", "one-item-per-child-retried-by-states"])
def test_a_foreach_node_reuses_each_items_output_one_by_one(
    cloud: LocalCloud, api: httpx.Client, server: Counter, timeout: int | None
) -> None:
    # GIVEN a cached foreach node fetching each URL of the input, run over /a and /b (items too long for a batch
    # run one per child execution, retried by Step Functions: another path through the executor)
    node: dict[str, Any] = {
        "id": "each",
        "tool": "http.get",
        "foreach": "{{ input.urls }}",
        "params": {"url": "{{ item }}"},
        "cache": {"ttl_seconds": 600},
    }
    if timeout:
        node["timeout_seconds"] = timeout
    spec = {"name": "cached-foreach", "nodes": [node]}
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]

    def run(*paths: str) -> dict[str, Any]:
        urls = [f"{server.base}{p}" for p in paths]
        started = api.post(f"/graphs/{graph_id}/runs", json={"input": {"urls": urls}}).json()
        return wait_for_run(api, started["run_id"], cloud=cloud)

    first = run("/a", "/b")
    # WHEN it runs over /a, /b and /c, then over /b and /a
    second = run("/a", "/b", "/c")
    third = run("/b", "/a")

    # THEN only /c was fetched again; each item's output is the one first made for its URL
    assert sorted(server.hits) == ["/a", "/b", "/c"]  # items run in parallel lanes
    assert [r["status"] for r in (first, second, third)] == ["SUCCEEDED"] * 3
    paths = [[o["json"]["path"] for o in r["nodes"]["each"]["output"]] for r in (first, second, third)]
    assert paths == [["/a", "/b"], ["/a", "/b", "/c"], ["/b", "/a"]]
    assert third["nodes"]["each"]["output"][1] == first["nodes"]["each"]["output"][0]
    # AND the node says how many items were reused: cached only when all were, as its event says
    assert (second["nodes"]["each"]["items_cached"], second["nodes"]["each"]["cached"]) == (2, False)
    assert (third["nodes"]["each"]["items_cached"], third["nodes"]["each"]["cached"]) == (2, True)
    items = api.get(f"/runs/{second['run_id']}/nodes/each/items").json()["items"]
    assert [i["cached"] for i in items] == [True, True, False]
    succeeded = [e for e in events_of(api, cloud, third["run_id"]) if e["type"] == "NODE_SUCCEEDED"]
    assert succeeded[0].get("cached") is True and "2 from the cache" in succeeded[0]["message"]


def test_a_foreach_of_model_calls_counts_only_the_answers_it_did_not_reuse(api: httpx.Client) -> None:
    spec = {
        "name": "cached-model-foreach",
        "nodes": [
            {
                "id": "ask",
                "tool": "llm.converse",
                "foreach": "{{ input.prompts }}",
                "params": {"prompt": "{{ item }}"},
                "cache": {"ttl_seconds": 600},
            }
        ],
    }
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]

    def run(*prompts: str) -> dict[str, Any]:
        started = api.post(f"/graphs/{graph_id}/runs", json={"input": {"prompts": list(prompts)}}).json()
        return wait_for_run(api, started["run_id"])

    first = run("Say hi", "Say bye")
    second = run("Say hi", "Say bye", "Say more")
    assert first["usage"]["llm_calls"] == 2
    assert second["nodes"]["ask"]["items_cached"] == 2
    assert second["usage"]["llm_calls"] == 1
    assert second["usage"]["output_tokens"] == second["nodes"]["ask"]["output"][2]["usage"]["output_tokens"]
