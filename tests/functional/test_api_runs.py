"""Run routes through the local stack: events by cursor, cancel, idempotent start, listing, reconciliation."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import boto3
from functional_support import hooked, wait_for_run

from functions.api.services import get_services

if TYPE_CHECKING:
    import httpx
    import pytest

    from local.cloud import LocalCloud

ECHO = {
    "name": "echo",
    "nodes": [
        {"id": "first", "tool": "util.echo", "params": {"message": "{{ input.message }}"}},
        {"id": "second", "tool": "util.echo", "params": {"got": "{{ first.message }}"}},
    ],
    "edges": [{"from": "first", "to": "second"}],
}
SLOW = {
    "name": "slow",
    "nodes": [
        {"id": "quick", "tool": "util.echo", "params": {"v": 1}},
        {"id": "nap", "tool": "util.sleep", "params": {"seconds": 3}},
        {"id": "after", "tool": "util.echo", "params": {"v": 2}},
    ],
    "edges": [{"from": "quick", "to": "nap"}, {"from": "nap", "to": "after"}],
}


def all_events(api: httpx.Client, run_id: str, limit: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = None
    for _ in range(200):
        page = api.get(f"/runs/{run_id}/events", params={"limit": limit, **({"after": after} if after else {})}).json()
        events += page["events"]
        if not page["next"]:
            return events
        after = page["next"]
    raise AssertionError("the event log never ended")


def create(api: httpx.Client, spec: dict[str, Any]) -> str:
    reply = api.post("/graphs", json=spec)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["graph_id"])


def test_a_run_reports_its_nodes_and_its_whole_log_by_cursor(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a finished run of a two-node chain
    graph_id = create(api, ECHO)
    started = api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "hello"}})
    assert started.status_code == 202, started.text
    run = wait_for_run(api, started.json()["run_id"])
    cloud.drain_events()

    # THEN the run has DESIGN.md's shape
    assert run["status"] == "SUCCEEDED"
    assert set(run) >= {
        "run_id",
        "graph_id",
        "version",
        "status",
        "execution_arn",
        "console_url",
        "input",
        "state",
        "error",
        "started_at",
        "finished_at",
        "progress",
        "nodes",
    }
    assert run["progress"] == {"done": 2, "total": 2, "percent": 100}
    assert run["nodes"]["second"]["output"] == {"got": "hello"}
    assert run["console_url"].endswith(run["execution_arn"])

    # AND the log read one event per page equals the log read at once, with each lifecycle event once
    whole = api.get(f"/runs/{run['run_id']}/events", params={"limit": 1000}).json()
    assert whole["next"] is None
    paged = all_events(api, run["run_id"], limit=1)
    assert paged == whole["events"]
    kinds = [(e["type"], e["node"]) for e in paged]
    assert kinds[0] == ("RUN_STARTED", None) and kinds[-1] == ("RUN_SUCCEEDED", None)
    for node in ("first", "second"):
        assert kinds.count(("NODE_STARTED", node)) == 1
        assert kinds.count(("NODE_SUCCEEDED", node)) == 1
    assert [k for k, _ in kinds].count("RUN_SUCCEEDED") == 1


def test_a_run_whose_start_died_is_failed_once_it_cannot_still_be_starting(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a run recorded RUNNING whose request died before StartExecution (its execution never started)
    from functions.api import runs_service

    graph_id = create(api, SLOW)

    def die(**_: Any) -> None:
        raise RuntimeError("the function running the request was stopped")

    with hooked(get_services().sfn, "before-call.sfn.StartExecution", die):
        assert api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).status_code == 500
    (run,) = api.get("/runs").json()["runs"]
    run_id = run["run_id"]

    # WHEN it is read and cancelled at once
    read, cancelled = api.get(f"/runs/{run_id}").json(), api.post(f"/runs/{run_id}/cancel")
    # THEN it is RUNNING, and the cancel a 409 to retry (its StartExecution might still come), not a 502
    assert read["status"] == "RUNNING"
    assert cancelled.status_code == 409, cancelled.text
    assert "still being started" in cancelled.json()["error"]["message"]

    # WHEN it is read once its start cannot still be under way
    monkeypatch.setattr(runs_service, "START_GRACE_SECONDS", 0)
    later = api.get(f"/runs/{run_id}").json()
    # THEN it has FAILED, saying its execution never started; a cancel is the 409 of a finished run
    assert later["status"] == "FAILED" and later["finished_at"]
    assert later["error"]["code"] == "StartExecutionFailed"
    assert "never started" in later["error"]["message"]
    assert "already finished" in api.post(f"/runs/{run_id}/cancel").json()["error"]["message"]


def test_cancel_stops_a_running_run_and_a_second_cancel_is_409(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a run whose middle node is sleeping
    graph_id = create(api, SLOW)
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    deadline = time.monotonic() + 10
    while api.get(f"/runs/{run_id}").json()["nodes"]["nap"]["status"] != "RUNNING":
        assert time.monotonic() < deadline, "the sleeping node never started"
        time.sleep(0.05)

    # WHEN it is cancelled
    cancelled = api.post(f"/runs/{run_id}/cancel")

    # THEN it is CANCELLED at once; its execution is ABORTED; the sleeping node is CANCELLED, the last never ran
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    run = api.get(f"/runs/{run_id}").json()
    assert run["status"] == "CANCELLED" and run["finished_at"]
    assert run["nodes"]["quick"]["status"] == "SUCCEEDED"
    assert run["nodes"]["nap"]["status"] == "CANCELLED"
    assert run["nodes"]["after"]["status"] == "CANCELLED" and run["nodes"]["after"]["attempts"] == 0
    sfn = boto3.client("stepfunctions", region_name=cloud.region)
    assert sfn.describe_execution(executionArn=run["execution_arn"])["status"] == "ABORTED"

    # AND a second cancel is a conflict; once the status event arrives nothing changes
    again = api.post(f"/runs/{run_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    time.sleep(3.2)  # the sleeping tool returns; its late result must not revive the run
    cloud.drain_events()
    final = api.get(f"/runs/{run_id}").json()
    assert final["status"] == "CANCELLED"
    types = [e["type"] for e in api.get(f"/runs/{run_id}/events").json()["events"]]
    assert types.count("RUN_CANCELLED") == 1
    assert not {"RUN_SUCCEEDED", "RUN_FAILED"} & set(types)


def test_retried_start_with_an_idempotency_key_runs_once(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a graph
    graph_id = create(api, ECHO)
    headers = {"Idempotency-Key": "deploy-2026-01-01"}

    # WHEN a client retries the same start four times
    replies = [
        api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "once"}}, headers=headers) for _ in range(4)
    ]

    # THEN one run and one execution exist, and each reply names it
    assert {r.status_code for r in replies} == {202}
    assert len({r.json()["run_id"] for r in replies}) == 1
    machine = api.get(f"/graphs/{graph_id}").json()["versions"][0]["state_machine_arn"]
    sfn = boto3.client("stepfunctions", region_name=cloud.region)
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    runs = api.get("/runs", params={"graph_id": graph_id}).json()["runs"]
    assert [r["run_id"] for r in runs] == [replies[0].json()["run_id"]]

    # AND reusing the key for another input is refused, clearly
    other = api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "twice"}}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_runs_are_paged_and_filtered_by_graph_and_status(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN three succeeded runs of one graph and one failed run of another
    good = create(api, ECHO)
    bad = create(
        api,
        {
            "name": "bad",
            "nodes": [{"id": "boom", "tool": "util.fail", "params": {"failures": 9}, "retry": {"max_attempts": 0}}],
        },
    )
    mine = [api.post(f"/graphs/{good}/runs", json={"input": {"message": str(i)}}).json()["run_id"] for i in range(3)]
    failed = api.post(f"/graphs/{bad}/runs", json={"input": {}}).json()["run_id"]
    for run_id in [*mine, failed]:
        wait_for_run(api, run_id)

    # WHEN the good graph's runs are paged one at a time
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = api.get("/runs", params={"graph_id": good, "limit": 1, **({"next": cursor} if cursor else {})}).json()
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next"]
        if not cursor:
            break

    # THEN each run appears once, newest first; the status filter finds the failed one among all runs
    assert seen == list(reversed(mine))
    failed_runs = api.get("/runs", params={"status": "FAILED", "limit": 100}).json()["runs"]
    assert [r["run_id"] for r in failed_runs] == [failed]
    assert failed_runs[0]["error"]["code"] == "InjectedFailure"
    succeeded = api.get("/runs", params={"status": "SUCCEEDED", "graph_id": good, "limit": 100}).json()["runs"]
    assert {r["run_id"] for r in succeeded} == set(mine)


def test_listed_runs_carry_the_same_progress_as_the_run_itself(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a run sleeping in its middle node, a finished run and a cancelled one
    graph_id = create(api, SLOW)
    finished = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    wait_for_run(api, finished)
    cancelled = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    assert api.post(f"/runs/{cancelled}/cancel").status_code == 200
    sleeping = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    deadline = time.monotonic() + 10
    while api.get(f"/runs/{sleeping}").json()["nodes"]["nap"]["status"] != "RUNNING":
        assert time.monotonic() < deadline, "the sleeping node never started"
        time.sleep(0.05)

    # WHEN the graph's runs are listed
    listed = {r["run_id"]: r["progress"] for r in api.get("/runs", params={"graph_id": graph_id}).json()["runs"]}

    # THEN each carries its progress, as GET /runs/{id} reports it
    assert listed[sleeping] == {"done": 1, "total": 3, "percent": 33}
    assert listed[finished] == {"done": 3, "total": 3, "percent": 100}
    for run_id in (sleeping, finished, cancelled):
        assert listed[run_id] == api.get(f"/runs/{run_id}").json()["progress"], run_id
    wait_for_run(api, sleeping)


def test_a_run_whose_status_event_was_lost_is_reconciled_on_read(
    api: httpx.Client, cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no status-change rule (the events function never hears of the run's end)
    monkeypatch.setattr(cloud.bus, "rules", [])
    graph_id = create(api, ECHO)
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "x"}}).json()["run_id"]
    sfn = boto3.client("stepfunctions", region_name=cloud.region)
    arn = api.get(f"/runs/{run_id}").json()["execution_arn"]
    deadline = time.monotonic() + 20
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cloud.drain_events()
    table = boto3.resource("dynamodb", region_name=cloud.region).Table(cloud.table_name)
    assert table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"})["Item"]["status"] == "RUNNING"

    # WHEN the run is read
    run = api.get(f"/runs/{run_id}").json()

    # THEN it shows its execution's true end, now stored, with its RUN_SUCCEEDED event
    assert run["status"] == "SUCCEEDED"
    assert table.get_item(Key={"pk": f"RUN#{run_id}", "sk": "RUN"})["Item"]["status"] == "SUCCEEDED"
    assert cloud.drain_events()  # the table stream's function numbers the event: it polls as Lambda's poller does
    types = [e["type"] for e in api.get(f"/runs/{run_id}/events").json()["events"]]
    assert types.count("RUN_SUCCEEDED") == 1


def test_offloaded_outputs_are_returned_whole_and_the_shared_state_is_reported(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a node whose output (40 KB) is over the 8 KiB inline limit, and a node that updates the state
    big = "x" * 40_000
    spec = {
        "name": "big",
        "nodes": [
            {"id": "large", "tool": "util.echo", "params": {"blob": "{{ input.blob }}", "n": 1}},
            {"id": "mark", "tool": "util.echo", "params": {"stage": "done"}, "update_state": True},
        ],
        "edges": [{"from": "large", "to": "mark"}],
    }
    graph_id = create(api, spec)

    # WHEN it runs
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {"blob": big}}).json()["run_id"]
    run = wait_for_run(api, run_id)

    # THEN the run shows the large output whole (fetched from the store), and the final shared state
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["nodes"]["large"]["output"] == {"blob": big, "n": 1}
    assert run["state"]["stage"] == "done"
    assert run["state"]["blob"] == big
    # AND the output really was offloaded: the node record holds a reference, the blob is in the table
    table = boto3.resource("dynamodb", region_name=cloud.region).Table(cloud.table_name)
    items = table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": f"RUN#{run_id}"})["Items"]
    assert any(str(i["sk"]).startswith("BLOB#large#") for i in items)
    record = next(i for i in items if str(i["sk"]).startswith("NODE#large#"))
    assert "$stepgraph_ref" in str(record["output_json"])


def test_a_running_runs_state_shows_the_updates_so_far(api: httpx.Client) -> None:
    # GIVEN a graph that writes into the shared state, then sleeps
    spec = {
        "name": "stateful",
        "nodes": [
            {"id": "score", "tool": "util.echo", "params": {"quality_score": 7}, "update_state": True},
            {"id": "nap", "tool": "util.sleep", "params": {"seconds": 2}},
        ],
        "edges": [{"from": "score", "to": "nap"}],
    }
    graph_id = create(api, spec)
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {"task": "review"}}).json()["run_id"]

    # WHEN it is read while the second node sleeps
    deadline = time.monotonic() + 10
    while (run := api.get(f"/runs/{run_id}").json())["nodes"]["nap"]["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    # THEN the state already holds the first node's update (and the input), though the run is RUNNING
    assert run["status"] == "RUNNING"
    assert run["state"] == {"task": "review", "quality_score": 7}
    assert run["progress"] == {"done": 1, "total": 2, "percent": 50}
    assert wait_for_run(api, run_id)["state"] == {"task": "review", "quality_score": 7}


def test_reading_a_running_run_again_does_not_read_its_graph_again(api: httpx.Client) -> None:
    # GIVEN a run still going (its node sleeps), read once
    spec = {"name": "napping", "nodes": [{"id": "nap", "tool": "util.sleep", "params": {"seconds": 2}}]}
    graph_id = create(api, spec)
    run_id = api.post(f"/graphs/{graph_id}/runs", json={}).json()["run_id"]
    assert api.get(f"/runs/{run_id}").json()["status"] == "RUNNING"
    reads: list[str] = []

    def on_get(params: dict[str, Any], **_: Any) -> None:
        reads.append(str(params["Key"]["sk"]))

    events = get_services().graphs.table.meta.client.meta.events  # the API's own client
    events.register("before-parameter-build.dynamodb.GetItem", on_get)
    try:
        # WHEN it is read again
        run = api.get(f"/runs/{run_id}").json()
    finally:
        events.unregister("before-parameter-build.dynamodb.GetItem", on_get)

    # THEN the answer lists its node, read without another read of the graph's version (it never changes)
    assert run["status"] == "RUNNING" and list(run["nodes"]) == ["nap"]
    assert reads and not [sk for sk in reads if sk.startswith("VERSION#")], reads
    assert wait_for_run(api, run_id)["status"] == "SUCCEEDED"
