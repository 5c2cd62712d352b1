"""The stepgraph CLI against the real local stack (in-process API client): what a user runs in their first hour."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import stepgraph_cli as cli

if TYPE_CHECKING:
    import httpx
    import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GRAPH_ID = re.compile(r"\bg_[0-9a-f]{12}\b")
RUN_ID = re.compile(r"\br_[0-9a-f]{16}\b")


def cli_json(out: str) -> Any:
    """The JSON document the CLI printed (indented), among the one-line metrics the in-process Lambdas print."""
    start = out.rfind("\n{\n") + 1 if not out.startswith("{\n") else 0
    return json.loads(out[start:])


def create(api: httpx.Client, path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["graphs", "create", str(path)], client=api) == 0
    found = GRAPH_ID.search(capsys.readouterr().out)
    assert found, "graphs create printed no graph id"
    return found.group(0)


def test_create_run_wait_and_list_an_example(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the echo-chain example created with the CLI
    graph_id = create(api, EXAMPLES / "echo-chain.json", capsys)

    # WHEN it is started with its sample input and --wait
    code = cli.main(
        [
            "runs",
            "start",
            graph_id,
            "--input",
            f"@{EXAMPLES / 'echo-chain.input.json'}",
            "--wait",
            "--interval",
            "0.05",
        ],
        client=api,
    )

    # THEN the live view ends with SUCCEEDED, the events and the node outputs, and exit 0
    out = capsys.readouterr().out
    assert code == 0, out
    run_id = RUN_ID.search(out)
    assert run_id
    assert f"{run_id.group(0)} SUCCEEDED" in out
    assert "NODE_SUCCEEDED" in out and "first" in out and "second" in out
    assert '"note": "second saw: hello"' in out

    # AND the lists show the graph and the run
    assert cli.main(["graphs", "list"], client=api) == 0
    assert graph_id in capsys.readouterr().out
    assert cli.main(["runs", "list", "--graph", graph_id], client=api) == 0
    listed = capsys.readouterr().out
    assert run_id.group(0) in listed and "SUCCEEDED" in listed


def test_a_failing_run_exits_1_for_scripts(
    api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a spec file whose only node always fails
    spec = {
        "name": "always-fails",
        "nodes": [
            {
                "id": "boom",
                "tool": "util.fail",
                "params": {"failures": 99, "error": "UpstreamDown", "message": "no upstream"},
                "retry": {"max_attempts": 0},
            }
        ],
    }
    path = tmp_path / "fails.json"
    path.write_text(json.dumps(spec))

    # WHEN the file is started directly with --wait --json
    code = cli.main(["--json", "runs", "start", str(path), "--wait", "--interval", "0.05"], client=api)

    # THEN exit 1 and stdout is the failed run, with the node's error
    run = cli_json(capsys.readouterr().out)
    assert code == cli.EXIT_FAILED
    assert run["status"] == "FAILED"
    assert run["nodes"]["boom"]["error"]["code"] == "UpstreamDown"


def test_validate_reports_a_bad_condition_at_its_place_in_the_file(
    api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a spec whose condition calls a function (outside the condition grammar)
    spec = {
        "name": "bad-condition",
        "nodes": [{"id": "a", "tool": "util.echo", "params": {"n": 1}}, {"id": "b", "tool": "util.echo"}],
        "edges": [{"from": "a", "to": "b", "when": "a.n == len(a)"}],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec, indent=2))

    # WHEN it is validated
    code = cli.main(["graphs", "validate", str(path)], client=api)

    # THEN exit 1, and the error names the file line of the condition and the edge
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"when"' in text)
    assert re.search(rf"{re.escape(str(path))}:{line}:\d+: edges\[0\]\.when", err), err
    assert "a->b" in err


def test_validate_a_valid_example_prints_its_mermaid(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the code-review example WHEN validated THEN exit 0 and a Mermaid flowchart naming its nodes
    assert cli.main(["graphs", "validate", str(EXAMPLES / "code-review.json")], client=api) == 0
    out = capsys.readouterr().out
    assert "flowchart" in out or "graph" in out
    for node in ("extract", "complexity", "issues", "score", "suggest", "report"):
        assert node in out


def test_diagram_writes_an_svg_and_an_html_page(
    api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a created example with a condition and a loop
    graph_id = create(api, EXAMPLES / "code-review.json", capsys)

    # WHEN its diagram is written as SVG and as HTML, and printed as Mermaid
    assert cli.main(["graphs", "diagram", graph_id, "--svg", str(tmp_path / "g.svg")], client=api) == 0
    assert cli.main(["graphs", "diagram", graph_id, "--html", str(tmp_path / "g.html")], client=api) == 0
    assert cli.main(["graphs", "diagram", graph_id], client=api) == 0
    mermaid = capsys.readouterr().out

    # THEN the SVG is a picture naming every node, and the page embeds it with the Mermaid source
    svg = (tmp_path / "g.svg").read_text()
    assert svg.lstrip().startswith("<svg")
    for node in ("extract", "complexity", "issues", "score", "suggest", "report"):
        assert node in svg
    page = (tmp_path / "g.html").read_text()
    assert "<svg" in page and "score" in page
    assert mermaid.strip().splitlines()[0] in page


def test_cancel_a_running_run_then_watch_it_end(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run of a slow node
    spec = {"name": "slow", "nodes": [{"id": "nap", "tool": "util.sleep", "params": {"seconds": 20}}]}
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]
    assert cli.main(["runs", "start", graph_id], client=api) == 0
    run_id = RUN_ID.search(capsys.readouterr().out)
    assert run_id

    # WHEN it is cancelled while running
    code = cli.main(["runs", "cancel", run_id.group(0)], client=api)

    # THEN cancel succeeds, watching it ends CANCELLED with exit 1, and a second cancel is the API's 409 (exit 3)
    assert code == 0, capsys.readouterr().err
    assert cli.main(["runs", "watch", run_id.group(0), "--interval", "0.05"], client=api) == cli.EXIT_FAILED
    assert f"{run_id.group(0)} CANCELLED" in capsys.readouterr().out
    assert cli.main(["runs", "cancel", run_id.group(0)], client=api) == cli.EXIT_API
    assert "409" in capsys.readouterr().err


def test_watch_follows_a_run_that_is_still_going(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run whose second node sleeps briefly, started without waiting
    spec = {
        "name": "two-steps",
        "nodes": [
            {"id": "quick", "tool": "util.echo", "params": {"v": 1}},
            {"id": "nap", "tool": "util.sleep", "params": {"seconds": 0.5}},
        ],
        "edges": [{"from": "quick", "to": "nap"}],
    }
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]

    # WHEN it is watched from the start
    code = cli.main(["runs", "watch", run_id, "--interval", "0.05"], client=api)

    # THEN the view followed it to the end: every node event once, then SUCCEEDED
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("NODE_STARTED") == 2
    assert out.count("NODE_SUCCEEDED") == 2
    assert f"{run_id} SUCCEEDED" in out


def test_idempotency_key_starts_one_run(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a graph
    graph_id = create(api, EXAMPLES / "echo-chain.json", capsys)
    argv = ["--json", "runs", "start", graph_id, "--input", '{"message": "once"}', "--idempotency-key", "k-1"]

    # WHEN the same start is sent twice, as a retrying script would
    assert cli.main(argv, client=api) == 0
    first = cli_json(capsys.readouterr().out)
    assert cli.main(argv, client=api) == 0
    second = cli_json(capsys.readouterr().out)

    # THEN both answers name the same run
    assert first["run_id"] == second["run_id"]


def test_tools_list_names_the_registry(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the local API WHEN tools are listed THEN the built-in tools appear with descriptions
    assert cli.main(["tools", "list"], client=api) == 0
    out = capsys.readouterr().out
    for name in ("http.get", "json.pick", "text.analyze", "util.echo", "code.score"):
        assert name in out


def test_update_publishes_a_version_that_new_runs_use_then_delete(
    api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the echo-chain example created, and an edited copy of it
    graph_id = create(api, EXAMPLES / "echo-chain.json", capsys)
    spec = json.loads((EXAMPLES / "echo-chain.json").read_text())
    spec["nodes"][1]["params"]["note"] = "v2 saw: {{ first.message }}"
    edited = tmp_path / "echo-chain-v2.json"
    edited.write_text(json.dumps(spec))

    # WHEN the edit is published and the graph run
    assert cli.main(["graphs", "update", graph_id, str(edited), "--quiet"], client=api) == 0
    assert capsys.readouterr().out.strip() == "2"
    code = cli.main(["--json", "runs", "start", graph_id, "--input", '{"message": "hi"}', "--wait"], client=api)

    # THEN the run used version 2
    run = cli_json(capsys.readouterr().out)
    assert code == 0
    assert run["version"] == 2
    assert run["nodes"]["second"]["output"]["note"] == "v2 saw: hi"

    # AND once deleted the graph is gone: showing it is the API's 404, exit 3
    assert cli.main(["graphs", "delete", graph_id], client=api) == 0
    capsys.readouterr()
    assert cli.main(["graphs", "show", graph_id], client=api) == cli.EXIT_API
    assert "404" in capsys.readouterr().err
