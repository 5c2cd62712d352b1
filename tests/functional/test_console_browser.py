"""The console in a real browser: Debian's headless Chromium, driven by Playwright, on the local stack over HTTP.

Chromium comes from the system's packages (``make browser``, which ``make test`` runs); Playwright only drives
it and never downloads a browser of its own. Screenshots go to ``STEPGRAPH_SCREENSHOTS`` when set (the README's
pictures under docs/console/ are taken so), else to the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from functional_support import wait_for_run
from werkzeug.serving import make_server

from local.cloud import LocalCloud

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import BrowserContext, Page, Request, Route


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000

SLOW_PAIR = {
    "name": "slow pair",
    "description": "greets, then naps long enough to be seen running",
    "nodes": [
        {"id": "greet", "tool": "util.echo", "params": {"message": "{{ input.name }}"}},
        {"id": "nap", "tool": "util.sleep", "params": {"seconds": 2.5}},
    ],
    "edges": [{"from": "greet", "to": "nap"}],
}
FAILING = {
    "name": "failing",
    "nodes": [
        {"id": "start", "tool": "util.echo", "params": {"message": "go"}},
        {
            "id": "flaky",
            "tool": "util.fail",
            "params": {"failures": 5, "error": "UpstreamDown", "message": "the upstream said no"},
        },
    ],
    "edges": [{"from": "start", "to": "flaky"}],
}


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make venv)"
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        return f"{CHROMIUM} is not installed (make browser installs Debian's chromium)"
    return None


@contextlib.contextmanager
def serving(cloud: LocalCloud) -> Iterator[str]:
    """The local stack's API on a loopback port (what ``make dev`` serves), for the browser."""
    server = make_server("127.0.0.1", 0, cloud.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="console-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def origin(cloud: LocalCloud) -> Iterator[str]:
    with serving(cloud) as url:
        yield url


class Browser:
    """One Chromium with a new empty profile, every request it makes recorded."""

    def __init__(self, context: BrowserContext, shots: Path) -> None:
        self.context = context
        self.requests: list[Request] = []
        self.shots = shots
        context.on("request", lambda request: self.requests.append(request))
        self.page: Page = context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"))

    def enter_key(self, key: str) -> None:
        self.page.fill("#key-input", key)
        self.page.click("#key-submit")

    def off_origin(self, origin: str) -> list[str]:
        """Requests to anything but the stack's origin (data: URLs are the page's own bytes)."""
        own = urlsplit(origin)
        return [
            r.url
            for r in self.requests
            if not r.url.startswith("data:") and urlsplit(r.url)[:2] != (own.scheme, own.netloc)
        ]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    missing = _browser_missing()
    if missing:
        # CI installs both (make test); a developer without them is told how to get them.
        (pytest.fail if os.environ.get("CI") else pytest.skip)(missing)
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("STEPGRAPH_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 820},
        )
        try:
            yield Browser(context, shots)
        finally:
            context.close()


def _node(page: Page, node: str, status: str) -> Any:
    return page.wait_for_selector(f'#diagram g.node[data-node="{node}"][data-status="{status}"]', state="attached")


def test_a_graph_is_created_run_and_watched_until_its_nodes_succeed(
    cloud: LocalCloud, origin: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    page = browser.page
    # GIVEN the console, opened with no key: it loads and asks for one
    page.goto(f"{origin}/console")
    page.wait_for_selector("#key-panel:not([hidden])")
    browser.enter_key(cloud.api_key or "")

    # WHEN a graph is created from its JSON spec in the page
    page.click("text=Create a graph from a spec")
    page.fill("#graph-spec", json.dumps(SLOW_PAIR))
    page.click("#create-graph")

    # THEN the graph's page draws its diagram, with every node, and its compiled definition
    page.wait_for_selector('#diagram g.node[data-node="nap"]', state="attached")
    assert page.locator("#diagram g.node").count() == 2
    page.wait_for_selector("text=StartAt")

    # WHEN a run is started from the input editor
    page.fill("#run-input", json.dumps({"name": "Ada"}))
    page.click("#start-run")

    # THEN the run view colours the node running while it sleeps, then succeeded, as the run goes
    page.wait_for_selector("#view a:has-text('slow pair')")
    _node(page, "greet", "SUCCEEDED")
    _node(page, "nap", "RUNNING")
    browser.shot("console-run-running")
    _node(page, "nap", "SUCCEEDED")
    page.wait_for_selector('#run-status[data-status="SUCCEEDED"]')

    # AND the event log has grown to the run's end, each event once
    page.wait_for_selector('#event-log tr[data-type="RUN_SUCCEEDED"]')
    rows = page.locator("#event-log tbody tr").all_inner_texts()
    assert len(rows) == len(set(rows)) >= 6
    types = page.locator("#event-log tbody tr").evaluate_all("rows => rows.map(r => r.dataset.type)")
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_SUCCEEDED"

    # AND clicking a node shows its attempts, timings and output
    page.click('#diagram g.node[data-node="greet"]')
    detail = page.inner_text("#node-detail")
    assert "Node greet" in detail and "attempts\n1" in detail and "Ada" in detail and " ms" in detail
    browser.shot("console-run-succeeded")

    # AND locally there is no Step Functions console link (there is none to follow)
    assert page.locator("#console-link").count() == 0

    # WHEN the graph is opened again THEN the last run's input is offered for the next run
    page.click("#view a[href^='#/graphs/']")
    expect(page.locator("#run-input")).to_have_value(re.compile("Ada"), timeout=WAIT_MS)
    assert json.loads(page.input_value("#run-input")) == {"name": "Ada"}

    # AND every request went to the stack's own origin, every data request with the key
    assert browser.off_origin(origin) == []
    data = [r for r in browser.requests if urlsplit(r.url).path != "/console"]
    assert data and all(r.headers.get("x-api-key") == cloud.api_key for r in data)
    assert browser.errors == []


def test_a_wrong_key_gets_a_clear_message_and_the_right_one_is_kept_for_the_session(
    cloud: LocalCloud, origin: str, browser: Browser
) -> None:
    page = browser.page
    page.goto(f"{origin}/console")

    # WHEN a wrong key is entered
    browser.enter_key("not-the-key")

    # THEN the page says the API refused it, and keeps asking
    message = page.wait_for_selector("#key-message:not([hidden])")
    assert message is not None
    text = message.inner_text()
    assert "refused the key" in text and "401" in text
    assert page.evaluate("sessionStorage.length") == 0
    browser.shot("console-wrong-key")

    # WHEN the right key is entered THEN the graphs show, and a reload does not ask again
    browser.enter_key(cloud.api_key or "")
    page.wait_for_selector("text=No graphs yet.")
    page.reload()
    page.wait_for_selector("text=No graphs yet.")
    assert page.is_hidden("#key-panel")

    # WHEN the key stops being accepted THEN the page asks for it again, saying why
    page.evaluate("sessionStorage.setItem('stepgraph.apiKey', 'revoked')")
    page.goto(f"{origin}/console#/runs")
    page.wait_for_selector("#key-message:not([hidden])")
    assert "refused the key" in page.inner_text("#key-message")

    # AND API Gateway's own refusal in AWS (403 {"message": "Forbidden"}) is said as clearly
    page.route(
        "**/graphs?limit=1",
        lambda route: route.fulfill(status=403, content_type="application/json", body='{"message":"Forbidden"}'),
    )
    browser.enter_key("a-key-api-gateway-refuses")
    page.wait_for_selector("#key-message:has-text('HTTP 403')")
    assert "refused the key (HTTP 403: Forbidden)" in page.inner_text("#key-message")
    assert page.evaluate("sessionStorage.length") == 0
    assert browser.off_origin(origin) == []


def test_a_failed_run_shows_the_node_error_and_runs_filter_by_graph_and_status(
    api: Any, cloud: LocalCloud, origin: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    # GIVEN a graph whose second node fails, and a run of another graph that succeeds
    failing = api.post("/graphs", json=FAILING).json()["graph_id"]
    fine = api.post("/graphs", json={**SLOW_PAIR, "name": "fine"}).json()["graph_id"]
    ok_run = api.post(f"/graphs/{fine}/runs", json={"input": {"name": "x"}}).json()["run_id"]
    page = browser.page
    page.goto(f"{origin}/console#/graphs/{failing}")
    browser.enter_key(cloud.api_key or "")

    # WHEN its run is started from the page
    page.click("#start-run")

    # THEN the failing node turns red, the run failed, and clicking the node shows its error
    _node(page, "flaky", "FAILED")
    page.wait_for_selector('#run-status[data-status="FAILED"]')
    page.click('#diagram g.node[data-node="flaky"]')
    error = page.wait_for_selector("#node-detail .node-error")
    assert error is not None
    assert "UpstreamDown" in error.inner_text() and "the upstream said no" in error.inner_text()
    assert "UpstreamDown" in page.inner_text("#run-error")
    browser.shot("console-run-failed")
    failed_run = page.url.rsplit("/", 1)[-1]

    # WHEN the runs are filtered by status, then by graph, in the list
    listed = page.locator("#runs tbody tr[data-run]")
    page.goto(f"{origin}/console#/runs")
    expect(listed).to_have_count(2)
    page.select_option("#filter-status", "FAILED")
    # THEN only the matching runs are listed
    expect(listed).to_have_count(1)
    assert listed.get_attribute("data-run") == failed_run
    page.select_option("#filter-status", "")
    expect(listed).to_have_count(2)
    page.select_option("#filter-graph", fine)
    expect(listed).to_have_count(1)
    assert listed.get_attribute("data-run") == ok_run
    browser.shot("console-runs")
    assert browser.off_origin(origin) == []
    assert browser.errors == []


def test_a_running_run_is_cancelled_from_its_page(api: Any, cloud: LocalCloud, origin: str, browser: Browser) -> None:
    # GIVEN a run whose node sleeps
    graph = api.post("/graphs", json={**SLOW_PAIR, "name": "to cancel"}).json()["graph_id"]
    run_id = api.post(f"/graphs/{graph}/runs", json={"input": {"name": "x"}}).json()["run_id"]
    page = browser.page
    page.goto(f"{origin}/console#/runs/{run_id}")
    browser.enter_key(cloud.api_key or "")

    # WHEN it is cancelled from the page (confirming)
    page.click("#cancel-run")

    # THEN the page shows the run cancelled and offers no cancel any more
    page.wait_for_selector('#run-status[data-status="CANCELLED"]')
    assert page.locator("#cancel-run").count() == 0
    assert api.get(f"/runs/{run_id}").json()["status"] == "CANCELLED"

    # AND once resumed from the page, the same run goes on and the page follows it to its end
    page.click("#resume-run")
    page.wait_for_selector('#run-status[data-status="SUCCEEDED"]', timeout=30_000)
    run = api.get(f"/runs/{run_id}").json()
    assert (run["status"], run["resumes"]) == ("SUCCEEDED", 1)
    assert page.locator("#resume-run").count() == 0
    assert page.locator('#event-log tr[data-type="RUN_RESUMED"]').count() == 1


def test_the_event_log_shows_each_event_once_when_the_log_ends_before_the_run_is_seen_ended(
    api: Any, cloud: LocalCloud, origin: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    # GIVEN a run that has ended, its whole log served with `next: null`
    graph = api.post("/graphs", json={**SLOW_PAIR, "name": "quick", "nodes": SLOW_PAIR["nodes"][:1], "edges": []})
    run_id = api.post(f"/graphs/{graph.json()['graph_id']}/runs", json={"input": {"name": "x"}}).json()["run_id"]
    logged = len(wait_for_events(api, run_id))

    # AND a page that keeps seeing the run as running (as when its status is read just before the log ends)
    def still_running(route: Route) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "status": "RUNNING", "finished_at": None})

    browser.page.route(f"**/runs/{run_id}", still_running)
    browser.page.goto(f"{origin}/console#/runs/{run_id}")
    browser.enter_key(cloud.api_key or "")

    # WHEN it polls a few times THEN the log shows every event once, never asking past its end again
    rows = browser.page.locator("#event-log tbody tr")
    expect(rows).to_have_count(logged)
    browser.page.wait_for_timeout(3_500)
    assert rows.count() == logged
    asked = [r.url for r in browser.requests if "/events" in r.url]
    assert len(asked) == 1, asked


def wait_for_events(api: Any, run_id: str) -> list[dict[str, Any]]:
    """The whole event log of a run, once it has ended and its log says so (`next` null)."""
    import time

    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        page = api.get(f"/runs/{run_id}/events", params={"limit": 1000}).json()
        if page["next"] is None:
            return list(page["events"])
        time.sleep(0.2)
    raise AssertionError(f"the log of {run_id} did not end")


def test_a_graph_page_shows_its_plan_versions_and_definition(
    api: Any, cloud: LocalCloud, origin: str, browser: Browser
) -> None:
    # GIVEN a graph with two versions, and the plan the API gives for it
    graph_id = api.post("/graphs", json=SLOW_PAIR).json()["graph_id"]
    api.put(f"/graphs/{graph_id}", json={**SLOW_PAIR, "description": "second version"})
    plan = api.get(f"/graphs/{graph_id}").json()["plan"]

    # WHEN its page is opened
    page = browser.page
    page.goto(f"{origin}/console#/graphs/{graph_id}")
    browser.enter_key(cloud.api_key or "")

    # THEN the plan reads as ranges, with AWS's limits beside the figures that have one
    page.wait_for_selector("#plan dl")
    text = page.inner_text("#plan")

    def reads(word: str, counted: dict[str, int]) -> str:
        low, high = counted["min"], counted["max"]
        return f"{word}\n{low}" if low == high else f"{word}\n{low} to {high}"

    assert reads("state transitions", plan["transitions"]) in text
    assert reads("Lambda invocations", plan["lambda_invocations"]) in text
    assert f"{plan['history_events_max']} (AWS's limit: 25,000)" in text
    assert f"{plan['definition_bytes']} bytes (AWS's limit: 1,048,576)" in text
    assert "cost of a run\n$" in text and "e-" not in text
    # AND its assumptions are there to read
    page.click("#plan summary")
    assert plan["assumptions"][0] in page.inner_text("#plan")

    # AND both versions are listed, and each version's compiled definition can be read
    page.wait_for_selector("text=StartAt")
    assert page.locator("text=v2").count() >= 1 and page.locator("text=v1").count() >= 1
    page.select_option("#definition-version", "1")
    page.wait_for_selector("#definition-version + div pre")
    assert '"StartAt"' in page.inner_text("#definition-version + div pre")
    browser.shot("console-graph")
    assert browser.off_origin(origin) == []


SOCKET = "ws://127.0.0.1:3001/"


@pytest.fixture
def live_origin() -> Iterator[tuple[LocalCloud, str]]:
    """A local stack that names a WebSocket API for live events (the browser's socket is routed by the test)."""
    with LocalCloud(env={"STEPGRAPH_WS_URL": SOCKET}) as live_cloud, serving(live_cloud) as url:
        yield live_cloud, url


def test_a_running_run_follows_events_pushed_over_the_websocket(
    cloud: LocalCloud, origin: str, browser: Browser
) -> None:
    from playwright.sync_api import expect

    # GIVEN the stack's WebSocket API served (as make dev does), and a running run
    socket = cloud.serve_websockets()
    with cloud.client(api_key=cloud.api_key) as api:
        graph_id = api.post("/graphs", json=SLOW_PAIR).json()["graph_id"]
        run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {"name": "x"}}).json()["run_id"]
        sockets: list[str] = []
        page = browser.page
        page.on("websocket", lambda ws: sockets.append(ws.url))

        # WHEN its page is opened
        page.goto(f"{origin}/console#/runs/{run_id}")
        browser.enter_key(cloud.api_key or "")

        # THEN the nodes turn succeeded and the log reaches the run's end, all pushed: the log is never polled
        _node(page, "nap", "RUNNING")
        _node(page, "nap", "SUCCEEDED")
        page.wait_for_selector('#run-status[data-status="SUCCEEDED"]')
        wait_for_run(api, run_id, cloud=cloud)
        log = api.get(f"/runs/{run_id}/events", params={"limit": 1000}).json()["events"]
        rows = page.locator("#event-log tbody tr")
        expect(rows).to_have_count(len(log))
        seqs = rows.evaluate_all("rs => rs.map(r => Number(r.dataset.seq))")
        assert seqs == list(range(1, len(seqs) + 1))
        assert "live" in page.inner_text("#event-log >> xpath=../..")
        assert [r.url for r in browser.requests if "/events" in r.url] == []
        # AND the one connection outside the API's origin is the stack's WebSocket API, with the key
        assert len(sockets) == 1 and sockets[0].startswith(socket) and f"api_key={cloud.api_key}" in sockets[0]
        assert browser.off_origin(origin) == []


def test_without_a_usable_websocket_the_run_view_polls(live_origin: tuple[LocalCloud, str], browser: Browser) -> None:
    live_cloud, origin = live_origin
    with live_cloud.client(api_key=live_cloud.api_key) as api:
        # GIVEN a running run, and a WebSocket API that closes every connection
        graph_id = api.post("/graphs", json=SLOW_PAIR).json()["graph_id"]
        run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {"name": "x"}}).json()["run_id"]
        page = browser.page
        page.route_web_socket(f"{SOCKET}**", lambda ws: ws.close())

        # WHEN its page is opened THEN it follows the run by polling, to its end
        page.goto(f"{origin}/console#/runs/{run_id}")
        browser.enter_key(live_cloud.api_key or "")
        page.wait_for_selector('#event-log tr[data-type="RUN_SUCCEEDED"]')
        _node(page, "nap", "SUCCEEDED")
        assert [r for r in browser.requests if "/events" in r.url]


def test_a_run_with_a_model_step_shows_what_the_model_used(
    api: Any, cloud: LocalCloud, origin: str, browser: Browser
) -> None:
    # GIVEN a run of a graph whose one node asks the (local stand-in) model, finished
    spec = {"name": "ask", "nodes": [{"id": "ask", "tool": "llm.converse", "params": {"prompt": "Hi"}}], "edges": []}
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    usage = wait_for_run(api, run_id, cloud=cloud)["usage"]
    assert usage["llm_calls"] == 1

    # WHEN its page is opened THEN it says how many calls and tokens the run's model steps used
    page = browser.page
    page.goto(f"{origin}/console#/runs/{run_id}")
    browser.enter_key(cloud.api_key or "")
    page.wait_for_selector("#view dt:has-text('model use')")
    said = page.inner_text("#view dl.facts")
    assert f"1 llm.converse calls, {usage['input_tokens']} tokens in, {usage['output_tokens']} out, about $" in said


PEOPLE = {
    "name": "people",
    "nodes": [
        {
            "id": "ask",
            "tool": "human.input",
            "params": {
                "prompt": "How many copies of {{ input.title }}?",
                "schema": {
                    "type": "object",
                    "properties": {"copies": {"type": "integer", "minimum": 1}, "note": {"type": "string"}},
                    "required": ["copies"],
                    "additionalProperties": False,
                },
            },
        },
        {"id": "approve", "tool": "human.approval", "params": {"prompt": "Print {{ ask.input.copies }} copies?"}},
        {"id": "print", "tool": "util.echo", "params": {"copies": "{{ ask.input.copies }}"}},
        {"id": "shelve", "tool": "util.echo", "params": {"why": "{{ approve.comment }}"}},
    ],
    "edges": [
        {"from": "ask", "to": "approve"},
        {"from": "approve", "to": "print", "when": "approve.approved == True"},
        {"from": "approve", "to": "shelve", "when": "approve.approved == False"},
    ],
}


def test_a_waiting_node_is_answered_from_its_page(api: Any, cloud: LocalCloud, origin: str, browser: Browser) -> None:
    # GIVEN a run that asks a person for an input, then for an approval
    graph = api.post("/graphs", json=PEOPLE).json()["graph_id"]
    run_id = api.post(f"/graphs/{graph}/runs", json={"input": {"title": "the guide"}}).json()["run_id"]
    page = browser.page
    page.goto(f"{origin}/console#/runs/{run_id}")
    browser.enter_key(cloud.api_key or "")

    # THEN the page shows what the run waits for, with the prompt resolved and a form from the node's schema
    ask = page.wait_for_selector('#waiting .waiting[data-node="ask"] input[name="copies"]', timeout=WAIT_MS)
    assert "How many copies of the guide?" in page.inner_text("#waiting")
    _node(page, "ask", "WAITING")
    browser.shot("console-run-waiting")

    # WHEN an answer that breaks the schema is sent THEN the API's 422 is shown and the node still waits
    ask.fill("0")
    page.click('#waiting .waiting[data-node="ask"] .submit-answer')
    page.wait_for_selector('#waiting .waiting[data-node="ask"] [role="alert"]')
    assert "copies" in page.inner_text('#waiting .waiting[data-node="ask"] [role="alert"]')
    assert api.get(f"/runs/{run_id}").json()["nodes"]["ask"]["status"] == "WAITING"

    # WHEN a good answer is sent THEN the run goes on to the approval, which the page offers next
    page.fill('#waiting .waiting[data-node="ask"] input[name="copies"]', "3")
    page.fill('#waiting .waiting[data-node="ask"] input[name="note"]', "spiral bound")
    page.click('#waiting .waiting[data-node="ask"] .submit-answer')
    page.wait_for_selector('#waiting .waiting[data-node="approve"] .reject', timeout=WAIT_MS)
    assert "Print 3 copies?" in page.inner_text("#waiting")

    # WHEN it is rejected with a comment
    page.fill('#waiting .waiting[data-node="approve"] input.comment', "too many")
    page.click('#waiting .waiting[data-node="approve"] .reject')

    # THEN the run routes on the answer to its end, and nothing waits any more
    page.wait_for_selector('#run-status[data-status="SUCCEEDED"]', timeout=WAIT_MS)
    _node(page, "shelve", "SUCCEEDED")
    assert page.locator("#waiting .waiting").count() == 0
    run = api.get(f"/runs/{run_id}").json()
    assert run["nodes"]["ask"]["output"]["input"] == {"copies": 3, "note": "spiral bound"}
    assert (run["nodes"]["approve"]["output"]["approved"], run["nodes"]["approve"]["output"]["comment"]) == (
        False,
        "too many",
    )
    assert run["nodes"]["shelve"]["output"] == {"why": "too many"}
    assert run["nodes"]["print"]["status"] == "SKIPPED"
    assert browser.errors == []
