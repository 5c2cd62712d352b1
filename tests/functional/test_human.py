"""People in the loop (issue 13, point 1): ``human.approval`` and ``human.input`` wait on a ``.waitForTaskToken``
Task in the local cloud, and ``POST /runs/{id}/nodes/{node}/respond`` resumes them."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from functional_support import start_run, wait_for_run

import stepgraph_cli as cli

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud


def approval_spec(**approve: Any) -> dict[str, Any]:
    """draft -> approve (a person) -> publish when approved, rework when rejected."""
    return {
        "name": "approval",
        "nodes": [
            {"id": "draft", "tool": "util.echo", "params": {"title": "Q3 report"}},
            {
                "id": "approve",
                "tool": "human.approval",
                "params": {"prompt": "Publish {{ draft.title }}?"},
                **approve,
            },
            {"id": "publish", "tool": "util.echo", "params": {"published": "{{ draft.title }}"}},
            {"id": "rework", "tool": "util.echo", "params": {"because": "{{ approve.comment }}"}},
        ],
        "edges": [
            {"from": "draft", "to": "approve"},
            {"from": "approve", "to": "publish", "when": "approve.approved == True"},
            {"from": "approve", "to": "rework", "when": "approve.approved == False"},
        ],
    }


INPUT_SPEC: dict[str, Any] = {
    "name": "input",
    "nodes": [
        {
            "id": "ask",
            "tool": "human.input",
            "params": {
                "prompt": "How many copies?",
                "schema": {
                    "type": "object",
                    "properties": {"copies": {"type": "integer", "minimum": 1}},
                    "required": ["copies"],
                    "additionalProperties": False,
                },
            },
        },
        {"id": "print", "tool": "util.echo", "params": {"copies": "{{ ask.input.copies }}"}},
    ],
    "edges": [{"from": "ask", "to": "print"}],
}


def waiting_run(api: httpx.Client, spec: dict[str, Any], timeout: float = 20.0) -> tuple[str, dict[str, Any]]:
    """Start a run of ``spec`` and return it once a node waits for a person."""
    run_id = start_run(api, spec)
    deadline = time.monotonic() + timeout
    while True:
        run = api.get(f"/runs/{run_id}").json()
        if run.get("waiting") or run["status"] != "RUNNING":
            return run_id, run
        assert time.monotonic() < deadline, f"run {run_id} never waited: {run}"
        time.sleep(0.05)


def respond(api: httpx.Client, run_id: str, node: str, body: Any) -> httpx.Response:
    return api.post(f"/runs/{run_id}/nodes/{node}/respond", json=body)


def token_of(cloud: LocalCloud, run_id: str, node: str) -> str:
    """The task token the executor stored for the respond route (read from the table, as only that route does)."""
    table = boto3.resource("dynamodb").Table(cloud.table_name)
    item = table.get_item(Key={"pk": f"RUN#{run_id}", "sk": f"TOKEN#{node}#0001"}, ConsistentRead=True)["Item"]
    return str(item["token"])


def test_an_approval_waits_then_routes_on_the_answer(cloud: LocalCloud, api: httpx.Client) -> None:
    for approved, ran, skipped in ((True, "publish", "rework"), (False, "rework", "publish")):
        # GIVEN a run waiting at an approval step whose prompt references an earlier node
        run_id, run = waiting_run(api, approval_spec())
        # THEN the node is WAITING, the run RUNNING and lists what it waits for, with the prompt resolved
        assert run["status"] == "RUNNING"
        assert run["nodes"]["approve"]["status"] == "WAITING"
        [wait] = run["waiting"]
        assert wait["node"] == "approve"
        assert wait["tool"] == "human.approval"
        assert wait["prompt"] == "Publish Q3 report?"
        assert wait["since"].endswith("Z")
        # AND the event log says so, prompt included (once the table's stream has delivered it)
        cloud.drain_events()
        events = api.get(f"/runs/{run_id}/events").json()["events"]
        waiting = [e for e in events if e["type"] == "NODE_WAITING"]
        assert len(waiting) == 1
        assert waiting[0]["node"] == "approve"
        assert "Publish Q3 report?" in waiting[0]["message"]
        # WHEN a person answers
        answered = respond(api, run_id, "approve", {"approved": approved, "comment": "checked"})
        # THEN the answer is accepted, and the run goes on along the matching edge
        assert answered.status_code == 200, answered.text
        assert answered.json()["output"]["approved"] is approved
        done = wait_for_run(api, run_id, cloud=cloud)
        assert done["status"] == "SUCCEEDED", done
        output = done["nodes"]["approve"]["output"]
        assert done["nodes"]["approve"]["status"] == "SUCCEEDED"
        assert set(output) == {"approved", "comment", "responded_at"}
        assert output["approved"] is approved
        assert output["comment"] == "checked"
        assert done["nodes"][ran]["status"] == "SUCCEEDED"
        assert done["nodes"][skipped]["status"] == "SKIPPED"
        assert done["waiting"] == []
        if not approved:
            assert done["nodes"]["rework"]["output"] == {"because": "checked"}


def test_a_waiting_run_is_listed_until_nothing_waits(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run waiting for a person and a run that waits for nothing
    waiting_id, _ = waiting_run(api, approval_spec())
    other_id = start_run(api, {"name": "plain", "nodes": [{"id": "a", "tool": "util.echo"}]})
    wait_for_run(api, other_id, cloud=cloud)
    # WHEN runs are listed by status WAITING
    listed = api.get("/runs", params={"status": "WAITING"})
    # THEN only the waiting run is there (its status is still RUNNING)
    assert listed.status_code == 200, listed.text
    assert [r["run_id"] for r in listed.json()["runs"]] == [waiting_id]
    assert listed.json()["runs"][0]["status"] == "RUNNING"
    # WHEN it is answered and has ended
    assert respond(api, waiting_id, "approve", {"approved": True}).status_code == 200
    wait_for_run(api, waiting_id, cloud=cloud)
    # THEN it is listed no more
    assert api.get("/runs", params={"status": "WAITING"}).json()["runs"] == []


def test_an_input_is_checked_against_the_schema(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run waiting at an input step with a schema
    run_id, _ = waiting_run(api, INPUT_SPEC)
    # WHEN the answer breaks the schema
    broken = respond(api, run_id, "ask", {"input": {"copies": 0, "colour": "red"}})
    # THEN it is refused with 422, the details saying where, and the node still waits
    assert broken.status_code == 422, broken.text
    details = broken.json()["error"]["details"]
    assert {d["loc"] for d in details} == {"input", "input.copies"}
    assert any("minimum" in d["message"] for d in details)
    assert api.get(f"/runs/{run_id}").json()["nodes"]["ask"]["status"] == "WAITING"
    # WHEN the body is not an answer of this tool at all
    for body in ({"approved": True}, {"input": {"copies": 2}, "extra": 1}, {}):
        wrong = respond(api, run_id, "ask", body)
        # THEN that is a 422 too, naming the field
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["error"]["details"]
    # WHEN a valid answer comes
    good = respond(api, run_id, "ask", {"input": {"copies": 3}})
    # THEN the node succeeds with it and the next node reads it
    assert good.status_code == 200, good.text
    done = wait_for_run(api, run_id, cloud=cloud)
    assert done["status"] == "SUCCEEDED", done
    assert done["nodes"]["ask"]["output"]["input"] == {"copies": 3}
    assert set(done["nodes"]["ask"]["output"]) == {"input", "responded_at"}
    assert done["nodes"]["print"]["output"] == {"copies": 3}


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ({"type": "integer", "minimum": "one"}, "not a valid JSON Schema"),
        ({"type": "string", "pattern": "^(?!admin)"}, "not one RE2 takes"),
        ({"$ref": "#"}, "refers to itself without end"),
    ],
)
def test_a_schema_that_cannot_be_applied_is_refused_at_creation(
    api: httpx.Client, schema: dict[str, Any], needle: str
) -> None:
    # GIVEN an input step whose schema is not a JSON Schema, or one that cannot be applied here
    spec = json.loads(json.dumps(INPUT_SPEC))
    spec["nodes"][0]["params"]["schema"] = schema
    # WHEN the graph is created
    created = api.post("/graphs", json=spec)
    # THEN it is refused, naming the node's schema and why
    assert created.status_code == 422, created.text
    [detail] = created.json()["error"]["details"]
    assert detail["loc"] == "nodes[0].params.schema"
    assert detail["node"] == "ask"
    assert needle in detail["message"]


def test_an_answer_to_a_catastrophic_pattern_is_checked_at_once(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run waiting for an input whose schema's pattern backtracks exponentially in Python's re
    spec = json.loads(json.dumps(INPUT_SPEC))
    spec["nodes"][0]["params"]["schema"] = {"type": "string", "pattern": "^(a+)+$"}
    spec["nodes"][1]["params"] = {"copies": "{{ ask.input }}"}
    run_id, _ = waiting_run(api, spec)
    # WHEN the answer does not match it
    broken = respond(api, run_id, "ask", {"input": "a" * 40 + "!"})
    # THEN the API says so at once (it spun until its timeout), and a matching answer goes on
    assert broken.status_code == 422, broken.text
    assert "does not match" in broken.json()["error"]["details"][0]["message"]
    assert respond(api, run_id, "ask", {"input": "aaaa"}).status_code == 200


def test_a_node_that_is_not_waiting_gets_409_and_unknown_ids_404(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run waiting at its approval step
    run_id, _ = waiting_run(api, approval_spec())
    # WHEN a node that never waits is answered, or one not reached yet
    for node in ("draft", "publish"):
        refused = respond(api, run_id, node, {"approved": True})
        # THEN 409
        assert refused.status_code == 409, refused.text
    # AND an unknown run or node is 404
    assert respond(api, "r_0000000000000000", "approve", {"approved": True}).status_code == 404
    assert respond(api, run_id, "nope", {"approved": True}).status_code == 404
    # WHEN the approval is answered twice, one after the other
    assert respond(api, run_id, "approve", {"approved": True}).status_code == 200
    again = respond(api, run_id, "approve", {"approved": False})
    # THEN the second answer is refused with 409 and the first one stands
    assert again.status_code == 409, again.text
    done = wait_for_run(api, run_id, cloud=cloud)
    assert done["nodes"]["approve"]["output"]["approved"] is True
    assert done["nodes"]["publish"]["status"] == "SUCCEEDED"


def test_two_answers_at_once_one_wins(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run waiting at its approval step
    run_id, _ = waiting_run(api, approval_spec())
    # WHEN two people answer at the same moment, differently
    barrier = threading.Barrier(2)
    results: dict[bool, httpx.Response] = {}

    def answer(approved: bool) -> None:
        with cloud.client(api_key=cloud.api_key) as client:
            barrier.wait()
            results[approved] = respond(client, run_id, "approve", {"approved": approved})

    threads = [threading.Thread(target=answer, args=(choice,)) for choice in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # THEN exactly one gets 200 and the other 409
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 409], {k: r.text for k, r in results.items()}
    winner = next(choice for choice, r in results.items() if r.status_code == 200)
    # AND the run goes on once, with the winner's answer
    done = wait_for_run(api, run_id, cloud=cloud)
    assert done["status"] == "SUCCEEDED", done
    assert done["nodes"]["approve"]["output"]["approved"] is winner
    assert done["nodes"]["publish" if winner else "rework"]["attempts"] == 1
    assert done["nodes"]["rework" if winner else "publish"]["status"] == "SKIPPED"


def test_the_wait_times_out(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run whose approval step waits at most 1 second, and nobody answers
    run_id, _ = waiting_run(api, approval_spec(timeout_seconds=1))
    # WHEN the run ends
    done = wait_for_run(api, run_id, cloud=cloud)
    # THEN the node failed with States.Timeout, and so did the run (the node is not optional)
    assert done["status"] == "FAILED", done
    assert done["nodes"]["approve"]["status"] == "FAILED"
    assert done["nodes"]["approve"]["error"]["code"] == "States.Timeout"
    assert done["waiting"] == []
    # AND an answer now is refused with 409
    assert respond(api, run_id, "approve", {"approved": True}).status_code == 409
    assert api.get("/runs", params={"status": "WAITING"}).json()["runs"] == []


def test_an_optional_wait_that_times_out_lets_the_run_go_on(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN an optional approval step of 1 second, followed by a step that does not read it
    spec = approval_spec(timeout_seconds=1, optional=True)
    spec["edges"] = [{"from": "draft", "to": "approve"}, {"from": "approve", "to": "publish"}]
    spec["nodes"] = [n for n in spec["nodes"] if n["id"] != "rework"]
    run_id, _ = waiting_run(api, spec)
    # WHEN nobody answers
    done = wait_for_run(api, run_id, cloud=cloud)
    # THEN the approval failed with States.Timeout and the run went on
    assert done["status"] == "SUCCEEDED", done
    assert done["nodes"]["approve"]["status"] == "FAILED"
    assert done["nodes"]["approve"]["error"]["code"] == "States.Timeout"
    assert done["nodes"]["publish"]["status"] == "SUCCEEDED"
    # AND the wait is no longer listed
    assert api.get("/runs", params={"status": "WAITING"}).json()["runs"] == []


def test_cancelling_a_waiting_run_ends_the_wait(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a run waiting at its approval step
    run_id, _ = waiting_run(api, approval_spec())
    # WHEN it is cancelled
    cancelled = api.post(f"/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    done = wait_for_run(api, run_id, cloud=cloud)
    # THEN the run and its waiting node are CANCELLED, nothing waits, and an answer is refused
    assert done["status"] == "CANCELLED"
    assert done["nodes"]["approve"]["status"] == "CANCELLED"
    assert done["waiting"] == []
    assert api.get("/runs", params={"status": "WAITING"}).json()["runs"] == []
    assert respond(api, run_id, "approve", {"approved": True}).status_code == 409


def test_an_answer_racing_the_timeout_is_never_lost(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN runs whose optional approval waits 2 seconds, answered from 1 s before to 1 s after the wait ends
    spec = approval_spec(timeout_seconds=2, optional=True)
    spec["edges"] = [{"from": "draft", "to": "approve"}, {"from": "approve", "to": "publish"}]
    spec["nodes"] = [n for n in spec["nodes"] if n["id"] != "rework"]
    spec["nodes"][2]["params"] = {"approval": "{{ approve }}"}

    def race(offset: float) -> tuple[float, str, int, str]:
        # one run per offset, all at once, each through its own client
        with cloud.client(api_key=cloud.api_key) as client:
            run_id, run = waiting_run(client, spec)
            since = time.monotonic()
            # seconds after the wait began (its `since`), however late this test saw it
            began = datetime.fromisoformat(run["waiting"][0]["since"].replace("Z", "+00:00")).timestamp()
            time.sleep(max(0.0, began + offset - time.time()))
            # WHEN the answer comes
            answered = respond(client, run_id, "approve", {"approved": True, "comment": f"at {offset}"})
            wait_for_run(client, run_id)
            assert time.monotonic() - since < 30
            return offset, run_id, answered.status_code, answered.text

    with ThreadPoolExecutor(max_workers=7) as pool:
        races = list(pool.map(race, (1.0, 1.7, 1.9, 2.0, 2.1, 2.3, 3.0)))
    assert cloud.drain_events(10)
    outcomes = []
    for offset, run_id, status_code, text in races:
        done = api.get(f"/runs/{run_id}").json()
        node = done["nodes"]["approve"]
        outcomes.append((status_code, node["status"]))
        # THEN either it was taken (200) and the run went on with it, or refused (409) and the node timed out
        assert status_code in (200, 409), text
        assert done["status"] == "SUCCEEDED", done
        if status_code == 200:
            assert node["status"] == "SUCCEEDED", (offset, node)
            assert node["output"]["comment"] == f"at {offset}"
            assert done["nodes"]["publish"]["output"]["approval"]["comment"] == f"at {offset}"
        else:
            assert node["status"] == "FAILED", (offset, node)
            assert node["error"]["code"] == "States.Timeout"
            assert done["nodes"]["publish"]["output"] == {"approval": None}
    # AND both endings happened across the attempts (the race was really run)
    assert {code for code, _ in outcomes} == {200, 409}, outcomes


def test_the_task_token_is_never_returned(
    cloud: LocalCloud, api: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run waiting at its approval step, and the token the executor stored for it
    run_id, _ = waiting_run(api, approval_spec())
    token = token_of(cloud, run_id, "approve")
    assert len(token) >= 16
    # WHEN everything the API shows about the run is read, before and after the answer
    seen = [
        api.get(f"/runs/{run_id}").text,
        api.get("/runs", params={"status": "WAITING"}).text,
        api.get(f"/runs/{run_id}/events").text,
        api.get(f"/runs/{run_id}/nodes/approve/items").text,
        api.get("/console").text,
    ]
    seen.append(respond(api, run_id, "approve", {"approved": True}).text)
    wait_for_run(api, run_id, cloud=cloud)
    seen += [api.get(f"/runs/{run_id}").text, api.get(f"/runs/{run_id}/events").text, api.get("/runs").text]
    # THEN the token appears in none of it, nor in any log line of the functions
    assert all(token not in text for text in seen)
    captured = capfd.readouterr()
    assert token not in captured.out
    assert token not in captured.err
    # AND a used token is forgotten
    table = boto3.resource("dynamodb").Table(cloud.table_name)
    assert "Item" not in table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "TOKEN#approve#0001"})


def test_the_cli_answers_and_shows_the_wait(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run waiting at its approval step
    run_id, _ = waiting_run(api, approval_spec())
    # WHEN the CLI shows the run
    assert cli.main(["runs", "show", run_id], client=api) == 0
    shown = capsys.readouterr().out
    # THEN it says what the run waits for, since when, and how to answer
    assert "WAITING" in shown
    assert "Publish Q3 report?" in shown
    assert f"stepgraph runs respond {run_id} approve" in shown
    # WHEN the CLI rejects it with a comment
    assert cli.main(["runs", "respond", run_id, "approve", "--reject", "--comment", "too long"], client=api) == 0
    assert "rejected" in capsys.readouterr().out
    # THEN the run goes on along the rejection edge
    done = wait_for_run(api, run_id)
    assert done["nodes"]["approve"]["output"]["approved"] is False
    assert done["nodes"]["rework"]["output"] == {"because": "too long"}
    # AND answering again is an API error the CLI reports with the 409
    assert cli.main(["runs", "respond", run_id, "approve", "--approve"], client=api) == cli.EXIT_API
    assert "409" in capsys.readouterr().err


def test_the_cli_answers_an_input(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run waiting at an input step
    run_id, _ = waiting_run(api, INPUT_SPEC)
    # WHEN the CLI gives an answer that breaks the schema, then one that fits
    assert cli.main(["runs", "respond", run_id, "ask", "--input", '{"copies": -1}'], client=api) == cli.EXIT_API
    assert "input.copies" in capsys.readouterr().err
    assert cli.main(["runs", "respond", run_id, "ask", "--input", '{"copies": 2}'], client=api) == 0
    # THEN the run goes on with it
    done = wait_for_run(api, run_id)
    assert done["nodes"]["print"]["output"] == {"copies": 2}


def test_runs_watch_shows_the_wait_then_the_answer(api: httpx.Client, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run waiting at its approval step, answered by someone else a moment after watching starts
    run_id, _ = waiting_run(api, approval_spec())

    def answer_later() -> None:
        time.sleep(1.0)
        respond(api, run_id, "approve", {"approved": True})

    answering = threading.Thread(target=answer_later)
    answering.start()
    # WHEN the run is watched (polling) until it ends
    code = cli.main(["runs", "watch", run_id, "--poll", "--interval", "0.1"], client=api)
    answering.join(10)
    out = capsys.readouterr().out
    # THEN the watch printed the wait with its prompt, then the answer, and the run's success
    assert code == 0, out
    assert "NODE_WAITING" in out
    assert "Publish Q3 report?" in out
    assert "approve answered: approved" in out
    assert out.index("NODE_WAITING") < out.index("approve answered")
