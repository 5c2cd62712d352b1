"""Every graph in examples/ runs as it is, with its sample input, through the local cloud, and does what it says.

The examples that fetch URLs read them from their input file (``http://127.0.0.1:8765/...``, the port ``make
dev`` gives the fixture server); here the fixture server runs on a free port and the input's URL is pointed at
it, with that ``host:port`` allowed through the SSRF guard as ``STEPGRAPH_HTTP_ALLOW_HOSTS``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from functional_support import run_graph, start_run, wait_for_run

from local.cloud import LocalCloud
from local.fixture_server import DEFAULT_PORT, FixtureServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import httpx

pytestmark = pytest.mark.slow  # a real server / every example end to end: tens of seconds

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = sorted(p for p in EXAMPLES.glob("*.json") if not p.name.endswith(".input.json"))


@pytest.fixture(scope="module")
def fixtures() -> Iterator[FixtureServer]:
    with FixtureServer(port=0) as server:
        yield server


@pytest.fixture
def stack(fixtures: FixtureServer) -> Iterator[httpx.Client]:
    """The local API, with the fixture server allowed through http.get's SSRF guard."""
    with (
        LocalCloud(env={"STEPGRAPH_HTTP_ALLOW_HOSTS": fixtures.allow_host}) as cloud,
        cloud.client(api_key=cloud.api_key) as client,
    ):
        yield client


def sample_input(name: str, fixtures: FixtureServer) -> Any:
    text = (EXAMPLES / f"{name}.input.json").read_text()
    return json.loads(text.replace(f"127.0.0.1:{DEFAULT_PORT}", fixtures.allow_host))


def run_example(api: httpx.Client, name: str, payload: Any, timeout: float = 60.0) -> dict[str, Any]:
    spec = json.loads((EXAMPLES / f"{name}.json").read_text())
    if name not in ANSWERS:
        return run_graph(api, spec, payload, timeout)
    # a person's steps: answer each as it waits (POST /runs/{id}/nodes/{node}/respond), as its reviewer would
    run_id = start_run(api, spec, payload)
    deadline = time.monotonic() + timeout
    pending = dict(ANSWERS[name])
    while pending:
        assert time.monotonic() < deadline, f"{name}: still waiting for {sorted(pending)}"
        run = api.get(f"/runs/{run_id}").json()
        assert run["status"] == "RUNNING", json.dumps(run, indent=1)[:4000]
        for wait in run["waiting"]:
            answered = api.post(f"/runs/{run_id}/nodes/{wait['node']}/respond", json=pending.pop(wait["node"]))
            assert answered.status_code == 200, answered.text
        time.sleep(0.05)
    return wait_for_run(api, run_id, timeout)


def statuses(run: dict[str, Any]) -> dict[str, str]:
    return {name: node["status"] for name, node in run["nodes"].items()}


def output(run: dict[str, Any], node: str) -> Any:
    return run["nodes"][node]["output"]


# ------------------------------------------------------------------------------ what each example must show


def check_echo_chain(run: dict[str, Any], given: Any) -> None:
    assert output(run, "second") == {"got": given["message"], "note": f"second saw: {given['message']}"}


def check_fetch_and_extract(run: dict[str, Any], given: Any) -> None:
    assert output(run, "fetch")["status_code"] == 200
    assert output(run, "extract") == {
        "title": "Graphs of agents on Step Functions",
        "author": "Ada Lovelace",
        "tags": ["step-functions", "serverless", "agents"],
        "minutes": 4,
    }


def check_fetch_analyze_chart(run: dict[str, Any], given: Any) -> None:
    analysis = output(run, "analyze")
    assert analysis["top_words"][0] == ["workflow", 6]  # the fixture text, counted
    chart = output(run, "chart")
    assert chart["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    assert [v["label"] for v in chart["data"]["values"]] == [word for word, _ in analysis["top_words"]]


def check_diamond(run: dict[str, Any], given: Any) -> None:
    joined = output(run, "join")
    assert joined["mood"] == "positive"
    assert joined["characters"] == len(given["text"])
    assert joined["summary"] == f"release notes: positive, {len(given['text'])} characters"
    join_started = run["nodes"]["join"]["started_at"]
    assert run["nodes"]["sentiment"]["finished_at"] <= join_started
    assert run["nodes"]["length"]["finished_at"] <= join_started


def check_foreach(run: dict[str, Any], given: Any) -> None:
    results = output(run, "analyze_each")
    assert len(results) == len(given["reviews"])
    assert output(run, "labels") == {"result": ["positive", "negative", "neutral", "positive"]}
    assert output(run, "counts") == {"result": [r["word_count"] for r in results]}


def check_conditional_branch(run: dict[str, Any], given: Any) -> None:
    assert statuses(run) == {
        "analyze": "SUCCEEDED",
        "thank": "SUCCEEDED",
        "escalate": "SKIPPED",
        "page_oncall": "SKIPPED",
        "archive": "SKIPPED",
    }
    assert output(run, "thank")["reply"].startswith("Thank you")


def check_retries_and_timeout(run: dict[str, Any], given: Any) -> None:
    flaky, slow = run["nodes"]["flaky"], run["nodes"]["slow"]
    assert flaky["status"] == "SUCCEEDED"
    assert flaky["attempts"] == 3
    assert slow["status"] == "FAILED"
    assert slow["error"]["code"] == "States.Timeout"
    assert output(run, "report") == {"flaky": "fresh", "slow": None}


def check_code_review(run: dict[str, Any], given: Any) -> None:
    report = output(run, "report")
    assert report["quality_score"] >= 8
    assert report["grade"] == "A"
    assert '"""' in report["source"] and '"""' not in given["source"]
    assert run["nodes"]["score"]["iterations"] == 2  # scored 5.18, fixed, scored again: 10
    assert run["nodes"]["extract"]["iterations"] == 1
    assert run["state"]["quality_score"] == report["quality_score"]


def check_summarize_article(run: dict[str, Any], given: Any) -> None:
    answer = output(run, "summarize")
    assert answer["json"]["topic"] == "serverless"  # the stand-in picks the enum value the article names most
    assert answer["json"]["summary"].startswith("Step Functions runs each node")
    assert answer["answered_by"].startswith("stepgraph-local-stand-in")
    assert run["nodes"]["general_desk"]["status"] == "SKIPPED"
    assert output(run, "serverless_desk")["summary"] == answer["json"]["summary"]
    assert run["usage"]["llm_calls"] == 1
    assert run["usage"]["input_tokens"] == answer["usage"]["input_tokens"] > 0
    assert run["usage"]["estimated_cost_usd"] > 0
    assert run["nodes"]["summarize"]["cached"] is False  # cached for an hour: this first run asked the model


def check_approval_gate(run: dict[str, Any], given: Any) -> None:
    approval = output(run, "approve")
    assert approval["approved"] is True
    assert approval["comment"] == "ship it"
    assert output(run, "publish") == {
        "published": given["note"],
        "approved_at": approval["responded_at"],
        "note": "ship it",
    }
    assert run["nodes"]["revise"]["status"] == "SKIPPED"


ANSWERS: dict[str, dict[str, dict[str, Any]]] = {
    "approval-gate": {"approve": {"approved": True, "comment": "ship it"}},
}
"""What a person answers to each waiting step of an example (its reviewer, in this test)."""

CHECKS: dict[str, Callable[[dict[str, Any], Any], None]] = {
    "echo-chain": check_echo_chain,
    "fetch-and-extract": check_fetch_and_extract,
    "fetch-analyze-chart": check_fetch_analyze_chart,
    "diamond": check_diamond,
    "foreach": check_foreach,
    "conditional-branch": check_conditional_branch,
    "retries-and-timeout": check_retries_and_timeout,
    "code-review": check_code_review,
    "summarize-article": check_summarize_article,
    "approval-gate": check_approval_gate,
}


def test_every_example_has_a_sample_input_and_a_check() -> None:
    # GIVEN the examples directory WHEN listed THEN each spec has its input file and its outcome is checked here
    names = {p.stem for p in SPECS}
    assert names == set(CHECKS)
    for name in names:
        assert (EXAMPLES / f"{name}.input.json").is_file(), name


def test_every_example_has_its_line_in_the_readme() -> None:
    # GIVEN the README WHEN its examples table is read
    doc = EXAMPLES.parent / "README.md"
    rows = [line for line in doc.read_text().splitlines() if line.startswith("| `") and ".json` |" in line]
    # THEN each example has a row saying what it shows, and no row names an example that does not exist
    assert {row.split("`")[1] for row in rows} == {p.name for p in SPECS}


@pytest.mark.parametrize("name", [p.stem for p in SPECS])
def test_example_runs_as_it_is(name: str, stack: httpx.Client, fixtures: FixtureServer) -> None:
    # GIVEN an example graph and its sample input (URLs pointed at the fixture server)
    given = sample_input(name, fixtures)

    # WHEN it is created and run through the local API
    run = run_example(stack, name, given)

    # THEN the run succeeds and the example shows what it is for
    assert run["status"] == "SUCCEEDED", json.dumps(run, indent=1)[:4000]
    CHECKS[name](run, given)
