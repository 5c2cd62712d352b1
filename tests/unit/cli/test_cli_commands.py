"""The stepgraph CLI against an in-memory API: what a user sees and the exit codes scripts rely on."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import httpx
import pytest

import stepgraph_cli as cli
from stepgraph_cli.app import build_parser
from stepgraph_cli.client import make_client
from stepgraph_cli.live import format_event
from stepgraph_cli.output import abbreviate
from stepgraph_cli.spec_errors import format_details
from stepgraph_cli.view import RunView

if TYPE_CHECKING:
    from pathlib import Path

    from tests.unit.cli.conftest import FakeApi


def run_cli(fake: FakeApi, *argv: str) -> int:
    with fake.client() as client:
        return cli.main(list(argv), client=client)


def test_graphs_create_posts_the_file_and_prints_the_new_id(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a spec file
    # WHEN it is created
    code = run_cli(fake, "graphs", "create", str(spec_file))

    # THEN the API received the file's spec, and the user sees the graph id and how to run it
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(fake.requests[0].content) == json.loads(spec_file.read_text())
    assert "created g_000000000000 version 1" in out
    assert "stepgraph runs start g_000000000000" in out
    assert "arn:aws:states:us-east-1:123456789012:stateMachine:stepgraph-g_000000000000" in out


def test_graphs_create_rejected_prints_the_api_message_with_file_positions(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an API that rejects the spec: the second node's param references a node that is not upstream
    fake.create_error = cli_error_response(
        422,
        "InvalidSpec",
        "the graph spec is invalid",
        [{"loc": "nodes[1].params.got", "node": "second", "message": "'third' is not upstream of 'second'"}],
    )

    # WHEN the user creates it
    code = run_cli(fake, "graphs", "create", str(spec_file))

    # THEN the exit code says API error and stderr names the message and the line/column in the file
    err = capsys.readouterr().err
    assert code == cli.EXIT_API
    assert "InvalidSpec (HTTP 422): the graph spec is invalid" in err
    line = next(n for n, text in enumerate(spec_file.read_text().splitlines(), 1) if '"got"' in text)
    col = spec_file.read_text().splitlines()[line - 1].index('"{{ first') + 1
    assert f"{spec_file}:{line}:{col}: nodes[1].params.got (node second): 'third' is not upstream" in err


def test_validate_shows_condition_errors_with_a_caret_and_exits_1(
    fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a spec whose edge condition calls a function, which the condition grammar forbids
    spec = {
        "name": "bad",
        "nodes": [{"id": "a", "tool": "util.echo"}, {"id": "b", "tool": "util.echo"}],
        "edges": [{"from": "a", "to": "b", "when": "a.n == len(a.items)"}],
    }
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec, indent=1))
    fake.validate_errors = [
        {"loc": "edges[0].when", "edge": "a->b", "position": {"line": 1, "col": 8}, "message": "calls not allowed"}
    ]

    # WHEN it is validated
    code = run_cli(fake, "graphs", "validate", str(path))

    # THEN exit 1, and the error names the file position of the call and points at it
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "invalid" in err and "1 error" in err
    text_lines = path.read_text().splitlines()
    line = next(n for n, t in enumerate(text_lines, 1) if '"when"' in t)
    col = text_lines[line - 1].index('"a.n') + 1 + 1 + 7
    assert f"{path}:{line}:{col}: edges[0].when (edge a->b): calls not allowed" in err
    assert text_lines[line - 1][col - 1 : col + 2] == "len"
    assert "      a.n == len(a.items)\n" + " " * (6 + 7) + "^\n" in err


def test_validate_a_valid_spec_prints_the_diagram(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a valid spec WHEN it is validated
    code = run_cli(fake, "graphs", "validate", str(spec_file))

    # THEN exit 0 with the Mermaid diagram
    out = capsys.readouterr().out
    assert code == 0
    assert "valid" in out and "2 nodes, 1 edges" in out
    assert "flowchart TD" in out and "first --> second" in out


def test_a_spec_saved_with_a_byte_order_mark_is_read(
    fake: FakeApi, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the same spec saved by an editor that writes a UTF-8 byte order mark
    marked = tmp_path / "marked.json"
    marked.write_bytes(b"\xef\xbb\xbf" + spec_file.read_bytes())
    # WHEN it is validated THEN it is read as the spec it is
    assert run_cli(fake, "graphs", "validate", str(marked)) == 0
    assert "2 nodes, 1 edges" in capsys.readouterr().out


def test_runs_start_wait_follows_events_once_each_and_ends_with_outputs(
    fake: FakeApi, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a created graph and an input file
    run_cli(fake, "graphs", "create", str(spec_file))
    (tmp_path / "in.json").write_text('{"message": "hi"}')
    capsys.readouterr()

    # WHEN a run is started with --wait
    code = run_cli(
        fake, "runs", "start", "g_000000000000", "--input", f"@{tmp_path / 'in.json'}", "--wait", "--interval", "0"
    )

    # THEN the input reached the API, every event is shown exactly once, and the run ends SUCCEEDED with outputs
    out = capsys.readouterr().out
    assert code == 0
    start = next(r for r in fake.requests if r.url.path.endswith("/runs") and r.method == "POST")
    assert json.loads(start.content) == {"input": {"message": "hi"}}
    for kind in ("RUN_STARTED", "NODE_STARTED", "NODE_SUCCEEDED", "RUN_SUCCEEDED"):
        assert kind in out
    assert out.count("RUN_STARTED") == 1
    assert out.count("NODE_SUCCEEDED") == 2
    assert "r_0000000000000000 SUCCEEDED" in out
    assert '"got": "hi"' in out
    assert "1.2 s" in out  # node durations in the final table
    # the events cursor was followed: later pages were asked for with after=<cursor>
    assert any("after=" in str(r.url) for r in fake.requests if r.url.path.endswith("/events"))


def test_watch_handles_a_cursor_that_goes_null_at_the_end_without_repeating_events(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an API whose events cursor is null on the last page
    fake.null_cursor_at_end = True
    run_cli(fake, "runs", "start", str(spec_file), "--input", '{"message": "x"}')
    capsys.readouterr()

    # WHEN the run is watched
    code = run_cli(fake, "runs", "watch", "r_0000000000000000", "--interval", "0")

    # THEN no event is printed twice
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("NODE_STARTED") == 2
    assert out.count("RUN_SUCCEEDED") == 1


def test_a_failed_run_exits_1_and_shows_the_node_error(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a graph whose second node fails
    fake.fail_runs = True

    # WHEN a spec file is started directly with --wait (created first)
    code = run_cli(fake, "runs", "start", str(spec_file), "--input", '{"message": "x"}', "--wait", "--interval", "0")

    # THEN exit 1 with the run's error and the failing node's error in the table
    captured = capsys.readouterr()
    assert code == cli.EXIT_FAILED
    assert "created g_000000000000" in captured.err
    assert "r_0000000000000000 FAILED" in captured.out
    assert "UpstreamDown: boom" in captured.out
    assert "NODE_FAILED" in captured.out


def test_json_output_is_the_final_run_document(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a created graph
    run_cli(fake, "graphs", "create", str(spec_file))
    capsys.readouterr()

    # WHEN started with --wait --json
    code = run_cli(
        fake, "--json", "runs", "start", "g_000000000000", "--input", '{"message": "m"}', "--wait", "--interval", "0"
    )

    # THEN stdout is exactly the final run as JSON
    run = json.loads(capsys.readouterr().out)
    assert code == 0
    assert run["status"] == "SUCCEEDED"
    assert run["nodes"]["second"]["output"] == {"got": "m"}


def test_cancel_of_a_finished_run_exits_3_with_the_api_message(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run that has finished
    run_cli(fake, "runs", "start", str(spec_file), "--wait", "--interval", "0")
    capsys.readouterr()

    # WHEN it is cancelled
    code = run_cli(fake, "runs", "cancel", "r_0000000000000000")

    # THEN the API's 409 reaches the user and the exit code is 3
    err = capsys.readouterr().err
    assert code == cli.EXIT_API
    assert "Conflict (HTTP 409): run r_0000000000000000 already finished" in err


def test_lists_show_graphs_and_runs(fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN one graph with one finished run
    run_cli(fake, "runs", "start", str(spec_file), "--wait", "--interval", "0")
    capsys.readouterr()

    # WHEN graphs and runs are listed
    assert run_cli(fake, "graphs", "list") == 0
    graphs = capsys.readouterr().out
    assert run_cli(fake, "runs", "list", "--graph", "g_000000000000", "--status", "SUCCEEDED") == 0
    runs = capsys.readouterr().out

    # THEN both tables name them, and the filters were sent
    assert "g_000000000000" in graphs and "pair" in graphs
    assert "r_0000000000000000" in runs and "SUCCEEDED" in runs and "2/2" in runs
    listed = [r for r in fake.requests if r.url.path == "/runs"][-1]
    assert listed.url.params["graph_id"] == "g_000000000000"
    assert listed.url.params["status"] == "SUCCEEDED"


def test_unknown_ids_and_unreachable_apis_exit_3(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no such run WHEN it is watched THEN 404's message and exit 3
    assert run_cli(fake, "runs", "watch", "r_nope") == cli.EXIT_API
    assert "NotFound (HTTP 404): no run r_nope" in capsys.readouterr().err

    # GIVEN an API that cannot be reached WHEN anything is asked THEN exit 3 and a hint about make dev
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(refuse)) as client:
        assert cli.main(["graphs", "list"], client=client) == cli.EXIT_API
    assert "cannot reach the API at http://127.0.0.1:9" in capsys.readouterr().err


def test_bad_input_json_and_missing_files_exit_2(
    fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN malformed --input WHEN a run is started THEN exit 2 before anything is sent
    assert run_cli(fake, "runs", "start", "g_x", "--input", "{nope") == cli.EXIT_USAGE
    assert "--input is not valid JSON" in capsys.readouterr().err
    assert fake.requests == []

    # GIVEN a spec file that is not JSON WHEN it is validated THEN exit 2 naming file:line:col
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "name": "x",\n  "nodes": [,]\n}')
    assert run_cli(fake, "graphs", "validate", str(broken)) == cli.EXIT_USAGE
    assert f"{broken}:3:13: not valid JSON" in capsys.readouterr().err

    assert run_cli(fake, "graphs", "create", str(tmp_path / "missing.json")) == cli.EXIT_USAGE

    # GIVEN a file nested past Python's JSON parser, one in UTF-16, and --input nested the same way
    # THEN each is exit 2 with a message, not a traceback
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert run_cli(fake, "graphs", "validate", str(deep)) == cli.EXIT_USAGE
    assert "nested deeper than Python's parser goes" in capsys.readouterr().err
    utf16 = tmp_path / "utf16.json"
    utf16.write_bytes('{"name": "x"}'.encode("utf-16"))
    assert run_cli(fake, "graphs", "validate", str(utf16)) == cli.EXIT_USAGE
    assert "not UTF-8 text" in capsys.readouterr().err
    assert run_cli(fake, "runs", "start", "g_x", "--input", "[" * 100_000 + "]" * 100_000) == cli.EXIT_USAGE
    assert "--input is JSON nested deeper" in capsys.readouterr().err
    assert fake.requests == []


def test_api_and_key_come_from_flags_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the environment names an API and a key
    monkeypatch.setenv("STEPGRAPH_API", "http://example.test:8080")
    monkeypatch.setenv("STEPGRAPH_API_KEY", "from-env")
    parser = build_parser()

    # WHEN the client is built without flags, and with flags after the subcommand
    from_env = make_client(parser.parse_args(["runs", "list"]))
    from_flags = make_client(parser.parse_args(["runs", "list", "--api", "http://other.test", "--api-key", "flag"]))

    # THEN the environment is used unless flags say otherwise
    assert str(from_env.base_url) == "http://example.test:8080"
    assert from_env.headers["x-api-key"] == "from-env"
    assert str(from_flags.base_url) == "http://other.test"
    assert from_flags.headers["x-api-key"] == "flag"
    monkeypatch.delenv("STEPGRAPH_API")
    monkeypatch.delenv("STEPGRAPH_API_KEY")
    default = make_client(parser.parse_args(["runs", "list"]))
    assert str(default.base_url) == "http://127.0.0.1:3000"
    assert default.headers["x-api-key"] == "local-dev-key"

    # AND a deployed API's URL keeps its stage: requests go under /v1/, as the ApiUrl output says
    deployed = make_client(parser.parse_args(["runs", "list", "--api", "https://abc.execute-api.test/v1/"]))
    assert str(deployed.build_request("GET", "/runs").url) == "https://abc.execute-api.test/v1/runs"


def cli_error_response(status: int, code: str, message: str, details: list[dict[str, str]]) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details}})


def test_quiet_prints_only_the_new_ids_for_shell_variables(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a spec file
    # WHEN a script creates it and starts a run of the file with --quiet, as GRAPH=$(...) would capture
    assert run_cli(fake, "graphs", "create", str(spec_file), "--quiet") == 0
    created = capsys.readouterr()
    assert run_cli(fake, "-q", "runs", "start", str(spec_file), "--input", '{"message": "q"}') == 0
    started = capsys.readouterr()

    # THEN stdout holds exactly the id, and nothing else is printed
    assert created.out == "g_000000000000\n"
    assert started.out == "r_0000000000000000\n"
    assert created.err == started.err == ""


def test_the_live_table_lists_pending_nodes_and_foreach_progress() -> None:
    # GIVEN a run in which a foreach node is half way through its items and a later node has not started
    spec = {"nodes": [{"id": "each", "tool": "text.analyze"}, {"id": "after", "tool": "transform"}]}
    view = RunView("r_1", spec)
    view.update(
        {
            "status": "RUNNING",
            "progress": {"done": 0, "total": 2, "percent": 0},
            "nodes": {"each": {"status": "RUNNING", "attempts": 1, "iterations": 1, "items_total": 4, "items_done": 2}},
        }
    )

    # WHEN the table is drawn
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(view)
    text = console.export_text()

    # THEN every node of the spec has a row, the foreach shows its items, and the bar its progress
    each = next(line for line in text.splitlines() if line.startswith("each"))
    after = next(line for line in text.splitlines() if line.startswith("after"))
    assert "RUNNING" in each and "2/4" in each
    assert "PENDING" in after and "transform" in after
    assert "0/2" in text


def test_a_missing_field_points_at_the_object_that_lacks_it(tmp_path: Path) -> None:
    # GIVEN a spec whose second node lacks its tool, and the API's detail for it
    text = '{\n  "name": "x",\n  "nodes": [\n    {"id": "a", "tool": "util.echo"},\n    {"id": "b"}\n  ]\n}\n'
    details = [
        {"loc": "nodes[1].tool", "message": "Field required"},
        {"loc": "options.max_concurrency", "message": "m"},
    ]

    # WHEN the details are formatted against the file
    lines = format_details(details, "spec.json", text)

    # THEN the first points at node b's object (line 5), the second at the whole document (nothing closer exists)
    assert lines[0] == "spec.json:5:5: nodes[1].tool: Field required"
    assert lines[1] == "spec.json:1:1: options.max_concurrency: m"


def test_long_outputs_are_cut_for_the_terminal_but_whole_in_json() -> None:
    # GIVEN an output with a long text and a long list
    value = {"text": "x" * 500, "rows": list(range(25)), "n": 1, "nested": [{"s": "short"}]}

    # WHEN it is abbreviated for the final panel
    shown = abbreviate(value)

    # THEN the text and list are cut with how much is left out, and short values are untouched
    assert shown["text"] == "x" * 160 + "… (500 characters)"
    assert shown["rows"] == [*range(10), "… 15 more"]
    assert shown["n"] == 1 and shown["nested"] == [{"s": "short"}]
    assert abbreviate({"a": "b"}) == {"a": "b"}


def test_event_lines_do_not_repeat_what_the_message_says() -> None:
    # GIVEN an event whose message already names the node and attempt, and a tool's log line
    started = {
        "at": "2026-01-01T00:00:01.250000Z",
        "type": "NODE_STARTED",
        "node": "fetch",
        "attempt": 2,
        "message": "fetch started http.get (attempt 2)",
    }
    log = {"at": "2026-01-01T00:00:02.000000Z", "type": "LOG", "node": "nap", "attempt": 1, "message": "sleeping 1s"}

    # THEN the first shows the message once, and the log line names its node
    assert format_event(started).endswith("[/] fetch started http.get (attempt 2)")
    assert "00:00:01.250" in format_event(started)
    assert format_event(log).endswith("nap sleeping 1s")


def test_event_lines_of_any_type_render_including_a_resume() -> None:
    # GIVEN a resume event and an event type this CLI does not know
    from rich.console import Console

    resumed = {"at": "2026-01-01T00:00:03.000000Z", "type": "RUN_RESUMED", "message": "run resumed (resume 1)"}
    unknown = {"at": "2026-01-01T00:00:04.000000Z", "type": "NODE_[NEW]", "node": "n", "message": "something"}
    console = Console(record=True, width=120)

    # WHEN they are printed THEN each is one readable line (no markup error)
    for event in (resumed, unknown):
        console.print(format_event(event))
    text = console.export_text()
    assert "RUN_RESUMED" in text and "run resumed (resume 1)" in text
    assert "NODE_[NEW]" in text and "n something" in text


def test_without_its_extra_the_cli_says_how_to_install_it(
    fake: FakeApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an install without the cli extra: rich cannot be imported
    monkeypatch.setitem(sys.modules, "rich.console", None)

    # WHEN a command runs
    code = run_cli(fake, "graphs", "list")

    # THEN it exits 2 with the install command instead of a traceback, and asked the API nothing
    assert code == cli.EXIT_USAGE
    assert "pip install 'stepgraph[cli]'" in capsys.readouterr().err
    assert fake.requests == []


@pytest.mark.parametrize(
    ("argv", "request_line"),
    [
        (["graphs", "list"], "GET /graphs"),
        (["graphs", "show", "g_000000000000"], "GET /graphs/g_000000000000"),
        (["graphs", "validate", "{file}"], "POST /graphs/validate"),
        (["runs", "list"], "GET /runs"),
        (["runs", "cancel", "r_0000000000000000"], "POST /runs/r_0000000000000000/cancel"),
    ],
)
def test_every_command_prints_the_apis_json_for_scripts_and_quiet_keeps_what_has_no_new_id(
    fake: FakeApi, spec_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], request_line: str
) -> None:
    # GIVEN a graph and a run of it
    assert run_cli(fake, "-q", "runs", "start", str(spec_file)) == 0
    capsys.readouterr()
    argv = [str(spec_file) if a == "{file}" else a for a in argv]

    # WHEN a script runs the command with --json, and a person with and without --quiet
    assert run_cli(fake, "--json", *argv) == 0
    printed = capsys.readouterr()
    method, path = request_line.split()
    with fake.client() as client:
        answered = client.request(method, path, json=json.loads(spec_file.read_text()) if method == "POST" else None)
    assert run_cli(fake, *argv) == 0
    for_people = capsys.readouterr().out
    assert run_cli(fake, "--quiet", *argv) == 0
    quiet = capsys.readouterr().out

    # THEN stdout is exactly the API's answer as JSON and nothing else; --quiet, with no new id to print,
    # changes nothing for people
    assert json.loads(printed.out) == answered.json()
    assert printed.err == ""
    assert quiet == for_people != ""
