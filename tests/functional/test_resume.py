"""Resume (issue 13, point 2): a FAILED, CANCELLED or TIMED_OUT run continues under its id, in the local cloud.

Nodes that SUCCEEDED are not run again and keep their records; the others run. The cause of a failure is a
user Lambda (``lambda:``) that fails until the test "fixes" it, so the run's input stays the same.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from functional_support import wait_for_run
from websockets.sync.client import connect

if TYPE_CHECKING:
    import httpx
    import pytest

    from local.cloud import LocalCloud


class Flaky:
    """A user function that fails while ``broken`` and counts its calls (the side effect resume must not repeat)."""

    def __init__(self) -> None:
        self.broken = True
        self.calls = 0
        self.released = threading.Event()
        """Once fixed, a call answers only when released (set unless a test holds it)."""
        self.released.set()
        self._lock = threading.Lock()

    def __call__(self, event: Any, _context: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        if self.broken:
            raise RuntimeError("the downstream service is down")
        self.released.wait(30)
        return {"fixed": True, "got": event}


class Counting:
    """A user function that answers with its event and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, event: Any, _context: Any) -> Any:
        with self._lock:
            self.calls += 1
        return event


def create(api: httpx.Client, spec: dict[str, Any]) -> str:
    reply = api.post("/graphs", json=spec)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["graph_id"])


def start(api: httpx.Client, graph_id: str, run_input: dict[str, Any] | None = None) -> str:
    reply = api.post(f"/graphs/{graph_id}/runs", json={"input": run_input or {}})
    assert reply.status_code == 202, reply.text
    return str(reply.json()["run_id"])


def resume(api: httpx.Client, run_id: str) -> httpx.Response:
    return api.post(f"/runs/{run_id}/resume")


def events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    for _ in range(100):
        page = api.get(f"/runs/{run_id}/events", params={"after": after}).json()
        found += page["events"]
        if not page["next"]:
            return found
        after = page["next"]
    raise AssertionError("the event log never ended")


def started_count(log: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(e["node"]) for e in log if e["type"] == "NODE_STARTED")


CHAIN = {
    "name": "chain",
    "nodes": [
        {"id": "a", "tool": "util.echo", "params": {"step": "a", "x": "{{ input.x }}"}, "update_state": {"seen": "x"}},
        {"id": "b", "tool": "lambda:stepgraph-user-once", "params": {"step": "b", "from_a": "{{ a.step }}"}},
        {"id": "c", "tool": "lambda:stepgraph-user-flaky", "params": {"from_b": "{{ b.from_a }}"}},
        {"id": "d", "tool": "util.echo", "params": {"c": "{{ c.fixed }}", "seen": "{{ state.seen }}"}},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"}],
}


def failed_chain(api: httpx.Client, cloud: LocalCloud) -> tuple[str, Flaky, Counting]:
    """A run of ``CHAIN`` that failed at c (its function is down), and the functions b and c call."""
    flaky, once = Flaky(), Counting()
    cloud.register("stepgraph-user-flaky", flaky)
    cloud.register("stepgraph-user-once", once)
    run_id = start(api, create(api, CHAIN), {"x": 1})
    assert wait_for_run(api, run_id, cloud=cloud)["status"] == "FAILED"
    return run_id, flaky, once


def test_a_failed_run_resumed_after_the_fix_runs_only_what_had_not_succeeded(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a run that failed at c after a (a built-in tool) and b (a user's Lambda) succeeded
    flaky, once = Flaky(), Counting()
    cloud.register("stepgraph-user-flaky", flaky)
    cloud.register("stepgraph-user-once", once)
    graph_id = create(api, CHAIN)
    run_id = start(api, graph_id, {"x": 7})
    failed = wait_for_run(api, run_id, cloud=cloud)
    assert failed["status"] == "FAILED", failed
    before = {node: failed["nodes"][node] for node in ("a", "b")}
    assert [before[n]["status"] for n in ("a", "b")] == ["SUCCEEDED", "SUCCEEDED"]
    assert failed["nodes"]["c"]["status"] == "FAILED"
    calls_before = flaky.calls

    # WHEN the cause is fixed and the run is resumed
    flaky.broken = False
    reply = resume(api, run_id)

    # THEN it runs again under its id; a and b keep their records and are not run again, c and d run
    assert reply.status_code == 202, reply.text
    assert reply.json()["run_id"] == run_id
    assert reply.json()["status"] == "RUNNING"
    assert reply.json()["resumes"] == 1
    run = wait_for_run(api, run_id, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    for node in ("a", "b"):
        kept = run["nodes"][node]
        assert kept["status"] == "SUCCEEDED"
        for key in ("started_at", "finished_at", "attempts", "duration_ms", "output"):
            assert kept[key] == before[node][key], (node, key)
    assert flaky.calls == calls_before + 1
    assert once.calls == 1  # the compiled <node>.resumed Choice did not invoke it again
    assert run["nodes"]["c"]["status"] == "SUCCEEDED"
    assert run["nodes"]["d"]["output"] == {"c": True, "seen": 7}  # state rebuilt from a's recorded output
    assert run["error"] is None and run["finished_at"]
    log = events(api, run_id)
    assert started_count(log) == Counter({"a": 1, "b": 1, "c": 1, "d": 1})  # a lambda: node starts when it succeeds
    assert [e["node"] for e in log if e["type"] == "NODE_FAILED"] == ["c"]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    kinds = [e["type"] for e in log if e["type"].startswith("RUN_")]
    assert kinds == ["RUN_STARTED", "RUN_FAILED", "RUN_RESUMED", "RUN_SUCCEEDED"]
    assert run["resumes"] == 1
    executions = run["executions"]
    assert [e["status"] for e in executions] == ["FAILED", "SUCCEEDED"]
    assert executions[0]["execution_arn"].endswith(f":{run_id}")
    assert executions[1]["execution_arn"].endswith(f":{run_id}-r1")
    assert run["execution_arn"] == executions[1]["execution_arn"]
    assert run["console_url"] == executions[1]["console_url"]
    assert all(e["console_url"].startswith("https://") for e in executions)


def test_only_a_run_that_ended_unsuccessfully_can_be_resumed(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a running run (a sleep), then the same run SUCCEEDED
    graph_id = create(
        api, {"name": "nap", "nodes": [{"id": "nap", "tool": "util.sleep", "params": {"seconds": 1}}], "edges": []}
    )
    run_id = start(api, graph_id)
    # WHEN each is resumed THEN 409 while RUNNING and once SUCCEEDED, and 404 for a run that does not exist
    running = resume(api, run_id)
    assert running.status_code == 409, running.text
    assert "RUNNING" in running.json()["error"]["message"]
    assert wait_for_run(api, run_id, cloud=cloud)["status"] == "SUCCEEDED"
    succeeded = resume(api, run_id)
    assert succeeded.status_code == 409, succeeded.text
    assert "SUCCEEDED" in succeeded.json()["error"]["message"]
    assert resume(api, "r_0000000000000000").status_code == 404
    run = api.get(f"/runs/{run_id}").json()
    assert (run["resumes"], len(run["executions"])) == (0, 1)


def test_a_run_of_a_deleted_graph_cannot_be_resumed_and_keeps_its_failure(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a failed run whose graph is then deleted (its state machines with it)
    spec = {"name": "gone", "nodes": [{"id": "a", "tool": "util.fail", "params": {"failures": 1, "error": "Boom"}}]}
    graph_id = create(api, spec)
    run_id = start(api, graph_id)
    failed = wait_for_run(api, run_id, cloud=cloud)
    assert failed["status"] == "FAILED"
    assert api.delete(f"/graphs/{graph_id}").status_code == 200
    # WHEN it is resumed
    refused = resume(api, run_id)
    # THEN 409 says why (it was a 502 "try again" that also rewrote the run's error), and the run is as it was
    assert refused.status_code == 409, refused.text
    assert "was deleted" in refused.json()["error"]["message"]
    after = api.get(f"/runs/{run_id}").json()
    assert (after["status"], after["error"], after["resumes"]) == ("FAILED", failed["error"], 0)


def test_a_run_is_resumed_at_most_max_resumes_times_and_keeps_each_failure_short(
    api: httpx.Client, cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a run that fails with a 3,900-character message however often it is resumed, and a limit of 3
    # resumes (20 in stepgraph: each keeps the execution before it in the run's history)
    from functions.api import runs_service

    monkeypatch.setattr(runs_service, "MAX_RESUMES", 3)
    params = {"failures": 1000, "error": "Boom", "message": "m" * 3900}
    graph_id = create(api, {"name": "stubborn", "nodes": [{"id": "a", "tool": "util.fail", "params": params}]})
    run_id = start(api, graph_id)
    wait_for_run(api, run_id, cloud=cloud)
    # WHEN it is resumed up to the limit, and once more
    for _ in range(3):
        assert resume(api, run_id).status_code == 202
        assert wait_for_run(api, run_id, cloud=cloud)["status"] == "FAILED"
    refused = resume(api, run_id)
    # THEN the last is a 409 naming the limit (it was a 502 for ever once the run's item was full)
    assert refused.status_code == 409, refused.text
    assert "the most a run can be (3); start a new run" in refused.json()["error"]["message"]
    # AND each earlier execution keeps the start of its error, the current one the whole message
    run = api.get(f"/runs/{run_id}").json()
    assert run["resumes"] == 3 and [e["status"] for e in run["executions"]] == ["FAILED"] * 4
    assert all(len(e["error"]["message"]) == 503 for e in run["executions"][:-1])
    assert run["executions"][-1]["error"]["message"].startswith("m" * 3900)


def test_a_run_resumed_twice_fails_again_then_succeeds(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a run that failed at c
    run_id, flaky, once = failed_chain(api, cloud)

    # WHEN it is resumed before the cause is fixed, fails again, and is resumed after the fix
    assert resume(api, run_id).status_code == 202
    again = wait_for_run(api, run_id, cloud=cloud)
    flaky.broken = False
    second = resume(api, run_id)

    # THEN the first resume failed at c with c's error, the second succeeded; a, b ran once in all
    assert again["status"] == "FAILED", again
    assert again["nodes"]["c"]["status"] == "FAILED"
    assert again["error"]["message"] == "the downstream service is down"
    assert second.status_code == 202, second.text
    assert second.json()["resumes"] == 2
    run = wait_for_run(api, run_id, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    assert once.calls == 1
    log = events(api, run_id)
    assert started_count(log)["a"] == 1
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    kinds = [e["type"] for e in log if e["type"].startswith("RUN_")]
    assert kinds == ["RUN_STARTED", "RUN_FAILED", "RUN_RESUMED", "RUN_FAILED", "RUN_RESUMED", "RUN_SUCCEEDED"]
    assert [e["node"] for e in log if e["type"] == "NODE_FAILED"] == ["c", "c"]
    assert run["resumes"] == 2
    assert [e["status"] for e in run["executions"]] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert [e["execution_arn"].rsplit(":", 1)[1] for e in run["executions"]] == [run_id, f"{run_id}-r1", f"{run_id}-r2"]
    listed = api.get("/runs", params={"status": "SUCCEEDED", "graph_id": run["graph_id"]}).json()["runs"]
    assert [r["run_id"] for r in listed] == [run_id]
    assert api.get("/runs", params={"status": "FAILED", "graph_id": run["graph_id"]}).json()["runs"] == []


def test_two_resumes_at_once_one_wins_the_other_gets_409(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a failed run
    run_id, flaky, _ = failed_chain(api, cloud)
    flaky.broken = False

    # WHEN two clients resume it at the same moment
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def one() -> None:
        with cloud.client(api_key=cloud.api_key) as client:
            barrier.wait()
            statuses.append(resume(client, run_id).status_code)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # THEN one resumed it, the other got 409, and one execution ran
    assert sorted(statuses) == [202, 409]
    run = wait_for_run(api, run_id, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    assert run["resumes"] == 1 and len(run["executions"]) == 2
    assert flaky.calls == 2
    kinds = [e["type"] for e in events(api, run_id) if e["type"].startswith("RUN_")]
    assert kinds == ["RUN_STARTED", "RUN_FAILED", "RUN_RESUMED", "RUN_SUCCEEDED"]


def test_a_cancelled_run_resumed_runs_the_node_it_was_cancelled_in(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a run cancelled while its second node sleeps
    spec = {
        "name": "slow",
        "nodes": [
            {"id": "quick", "tool": "util.echo", "params": {"v": 1}},
            {"id": "nap", "tool": "util.sleep", "params": {"seconds": 1}},
            {"id": "after", "tool": "util.echo", "params": {"v": "{{ quick.v }}"}},
        ],
        "edges": [{"from": "quick", "to": "nap"}, {"from": "nap", "to": "after"}],
    }
    run_id = start(api, create(api, spec))
    wait_for_run(api, run_id, until={"RUNNING"})
    for _ in range(200):
        if api.get(f"/runs/{run_id}").json()["nodes"]["nap"]["status"] == "RUNNING":
            break
        threading.Event().wait(0.02)
    cancelled = api.post(f"/runs/{run_id}/cancel")
    assert cancelled.json()["status"] == "CANCELLED", cancelled.text
    quick = api.get(f"/runs/{run_id}").json()["nodes"]["quick"]

    # WHEN it is resumed
    reply = resume(api, run_id)

    # THEN the sleep runs again, quick does not, and the run succeeds
    assert reply.status_code == 202, reply.text
    run = wait_for_run(api, run_id, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["quick"]["started_at"] == quick["started_at"]
    assert run["nodes"]["after"]["output"] == {"v": 1}
    assert run["nodes"]["nap"]["status"] == "SUCCEEDED"
    counts = started_count(events(api, run_id))
    assert (counts["quick"], counts["after"]) == (1, 1)
    assert counts["nap"] >= 1
    assert [e["status"] for e in run["executions"]] == ["CANCELLED", "SUCCEEDED"]


def test_a_loop_resumed_replays_its_iterations_in_order(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a loop whose body calls a user's function, which fails in the second iteration
    calls: list[int] = []
    broken = threading.Event()
    broken.set()

    def check(event: Any, _context: Any) -> dict[str, Any]:
        calls.append(int(event["n"]))
        if broken.is_set() and event["n"] == 2:
            raise RuntimeError("two is not allowed yet")
        return {"ok": event["n"]}

    cloud.register("stepgraph-user-check", check)
    spec = {
        "name": "loop",
        "nodes": [
            {"id": "start", "tool": "util.echo", "params": {"n": 0}, "update_state": True},
            {"id": "bump", "tool": "util.echo", "params": {"n": "{{ state.n }}"}},
            {
                "id": "inc",
                "tool": "transform",
                "params": {"value": "{{ bump }}", "expression": "sum([n, `1`])"},
                "update_state": {"n": "result"},
            },
            {"id": "call", "tool": "lambda:stepgraph-user-check", "params": {"n": "{{ state.n }}"}},
            {"id": "done", "tool": "util.echo", "params": {"final": "{{ state.n }}", "last": "{{ call.ok }}"}},
        ],
        "edges": [
            {"from": "start", "to": "bump"},
            {"from": "bump", "to": "inc"},
            {"from": "inc", "to": "call"},
            {"from": "call", "to": "bump", "when": "state.n < 3", "max_iterations": 5},
            {"from": "call", "to": "done"},
        ],
    }
    run_id = start(api, create(api, spec))
    failed = wait_for_run(api, run_id, cloud=cloud)
    assert failed["status"] == "FAILED", failed
    assert calls == [1, 2]

    # WHEN the function is fixed and the run resumed
    broken.clear()
    assert resume(api, run_id).status_code == 202

    # THEN the first iteration is replayed (its call not invoked again), the second and third run
    run = wait_for_run(api, run_id, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    assert calls == [1, 2, 2, 3]
    assert run["nodes"]["done"]["output"] == {"final": 3, "last": 3}
    assert run["state"]["n"] == 3
    assert (run["nodes"]["bump"]["iterations"], run["nodes"]["call"]["iterations"]) == (3, 3)
    counts = started_count(events(api, run_id))
    assert (counts["start"], counts["bump"], counts["inc"]) == (1, 3, 3)


def test_a_foreach_resumed_runs_only_the_items_that_had_not_finished(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a foreach of sleeps, one at a time, cancelled after its first items finished
    spec = {
        "name": "each",
        "nodes": [
            {
                "id": "each",
                "tool": "util.sleep",
                "foreach": "{{ input.items }}",
                "params": {"seconds": "{{ item }}"},
                "max_concurrency": 1,
            },
            {"id": "after", "tool": "util.echo", "params": {"all": "{{ each }}"}},
        ],
        "edges": [{"from": "each", "to": "after"}],
    }
    run_id = start(api, create(api, spec), {"items": [0, 0, 1, 1, 1, 1]})
    finished: list[dict[str, Any]] = []
    for _ in range(400):
        items = api.get(f"/runs/{run_id}/nodes/each/items").json()["items"]
        finished = [i for i in items if i["status"] == "SUCCEEDED"]
        if len(finished) >= 2:
            break
        threading.Event().wait(0.02)
    assert api.post(f"/runs/{run_id}/cancel").json()["status"] == "CANCELLED"
    cloud.drain_events(10)
    kept = {
        i["index"]: i for i in api.get(f"/runs/{run_id}/nodes/each/items").json()["items"] if i["status"] == "SUCCEEDED"
    }
    assert len(kept) < 6

    # WHEN it is resumed
    assert resume(api, run_id).status_code == 202

    # THEN every item has succeeded, those that had finished keep their records, and the run succeeds
    run = wait_for_run(api, run_id, timeout=60, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    items = {i["index"]: i for i in api.get(f"/runs/{run_id}/nodes/each/items").json()["items"]}
    assert sorted(items) == list(range(6))
    assert all(i["status"] == "SUCCEEDED" for i in items.values())
    for index, item in kept.items():
        assert (items[index]["started_at"], items[index]["finished_at"]) == (item["started_at"], item["finished_at"])
    assert len(run["nodes"]["after"]["output"]["all"]) == 6
    assert run["nodes"]["each"]["items_done"] == 6


def test_a_follower_sees_the_failure_the_resume_and_then_the_new_events(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a failed run, fixed and resumed, whose resumed c is held until the test lets it answer
    ws_url = cloud.serve_websockets()
    run_id, flaky, _ = failed_chain(api, cloud)
    flaky.broken = False
    flaky.released.clear()
    assert resume(api, run_id).status_code == 202

    # WHEN a client subscribes to the whole log over the WebSocket API while it runs again
    messages: list[dict[str, Any]] = []
    with connect(ws_url, additional_headers={"x-api-key": cloud.api_key}, open_timeout=10) as socket:
        socket.send(json.dumps({"action": "subscribe", "run_id": run_id, "after": 0}))
        first = json.loads(socket.recv(timeout=30))
        flaky.released.set()
        messages.append(first)
        while messages[-1]["type"] not in ("run", "error"):
            messages.append(json.loads(socket.recv(timeout=30)))

    # THEN it gets every event once, numbered without gaps: RUN_FAILED, RUN_RESUMED, the new events, then the end
    events_seen = [m["event"] for m in messages if m["type"] == "event"]
    assert [e["seq"] for e in events_seen] == list(range(1, len(events_seen) + 1))
    kinds = [e["type"] for e in events_seen]
    assert [k for k in kinds if k.startswith("RUN_")] == ["RUN_STARTED", "RUN_FAILED", "RUN_RESUMED", "RUN_SUCCEEDED"]
    resumed_at = kinds.index("RUN_RESUMED")
    assert [(e["type"], e["node"]) for e in events_seen[resumed_at + 1 :] if e["node"] == "c"] == [
        ("NODE_STARTED", "c"),
        ("NODE_SUCCEEDED", "c"),
    ]
    assert messages[-1] == {"type": "run", "run_id": run_id, "status": "SUCCEEDED", "error": None}
    assert [e["seq"] for e in events(api, run_id)] == [e["seq"] for e in events_seen]


def waiting(api: httpx.Client, run_id: str) -> dict[str, Any]:
    for _ in range(400):
        run = dict(api.get(f"/runs/{run_id}").json())
        if run.get("waiting") or run["status"] != "RUNNING":
            return run
        threading.Event().wait(0.05)
    raise AssertionError(f"run {run_id} never waited")


def test_a_resumed_run_does_not_ask_a_person_again_and_waits_again_where_it_was_cancelled(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a run whose person approved, then failed at c; and a run cancelled while it waited for a person
    flaky = Flaky()
    cloud.register("stepgraph-user-flaky", flaky)
    spec = {
        "name": "approve then call",
        "nodes": [
            {"id": "approve", "tool": "human.approval", "params": {"prompt": "Go?"}},
            {"id": "c", "tool": "lambda:stepgraph-user-flaky", "params": {"ok": "{{ approve.approved }}"}},
        ],
        "edges": [{"from": "approve", "to": "c"}],
    }
    graph_id = create(api, spec)
    answered = start(api, graph_id)
    assert waiting(api, answered)["waiting"]
    assert api.post(f"/runs/{answered}/nodes/approve/respond", json={"approved": True}).status_code == 200
    assert wait_for_run(api, answered, cloud=cloud)["status"] == "FAILED"
    cancelled = start(api, graph_id)
    assert waiting(api, cancelled)["waiting"]
    assert api.post(f"/runs/{cancelled}/cancel").json()["status"] == "CANCELLED"
    flaky.broken = False

    # WHEN both are resumed
    assert resume(api, answered).status_code == 202
    assert resume(api, cancelled).status_code == 202

    # THEN the answered one goes on with the recorded answer, asking nobody
    run = wait_for_run(api, answered, cloud=cloud)
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["approve"]["output"]["approved"] is True
    assert [e["type"] for e in events(api, answered)].count("NODE_WAITING") == 1
    # AND the cancelled one waits for its person again, and succeeds once answered
    again = waiting(api, cancelled)
    assert [w["node"] for w in again["waiting"]] == ["approve"], again
    assert api.post(f"/runs/{cancelled}/nodes/approve/respond", json={"approved": True}).status_code == 200
    assert wait_for_run(api, cancelled, cloud=cloud)["status"] == "SUCCEEDED"
    assert [e["type"] for e in events(api, cancelled)].count("NODE_WAITING") == 2
