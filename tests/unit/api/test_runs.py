"""Run routes against moto-executed state machines: start, read with reconciliation, cancel, list, events."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from functions.store.runs import RunStore
from tests.unit.api.helpers import all_events, fail, seed_graph, succeed, wait, wait_for
from tests.unit.table_stream import pump

if TYPE_CHECKING:
    from functions.api.services import Services
    from tests.unit.api.conftest import Client


def test_a_run_starts_and_is_reconciled_to_succeeded_without_a_status_event(aws: Services, client: Client) -> None:
    # GIVEN a graph whose execution finishes at once, and no status-change rule delivering events
    graph_id = seed_graph(aws, succeed())

    # WHEN a run is started
    started = client.post(f"/graphs/{graph_id}/runs", json={"input": {"x": 1}})

    # THEN 202 with the run id, which is also the execution's name, and a console link
    assert started.status == 202, started.text
    body = started.json()
    assert body["run_id"].startswith("r_") and len(body["run_id"]) == 18
    assert body["status"] == "RUNNING"
    assert body["execution_arn"].endswith(f":execution:unit-{graph_id}:{body['run_id']}")
    assert "console.aws.amazon.com/states" in body["console_url"]
    described = aws.sfn.describe_execution(executionArn=body["execution_arn"])
    assert described["name"] == body["run_id"]

    # AND reading it reconciles with DescribeExecution: SUCCEEDED, finished, state and input kept
    run = wait_for(client, body["run_id"])
    assert run["status"] == "SUCCEEDED"
    assert run["finished_at"] is not None and run["error"] is None
    assert run["input"] == {"x": 1}
    assert run["state"] == {"x": 1}
    assert run["progress"]["total"] == 2
    assert run["version"] == 1 and run["graph_id"] == graph_id
    types = [e["type"] for e in all_events(client, body["run_id"])]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_SUCCEEDED"
    assert types.count("RUN_SUCCEEDED") == 1


def test_nodes_that_never_ran_in_a_succeeded_run_are_skipped(aws: Services, client: Client) -> None:
    # GIVEN a graph whose execution produced a result for 'a' only
    graph_id = seed_graph(aws, succeed({"a": 1}))
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]

    # WHEN the run has ended
    run = wait_for(client, run_id)

    # THEN b is SKIPPED (with a NODE_SKIPPED event) and the progress is complete
    assert run["status"] == "SUCCEEDED"
    assert run["nodes"]["b"]["status"] == "SKIPPED"
    assert run["progress"] == {"done": 2, "total": 2, "percent": 100}
    skipped = [e for e in all_events(client, run_id) if e["type"] == "NODE_SKIPPED"]
    assert [e["node"] for e in skipped] == ["b"]


def test_a_failed_execution_fails_the_run_and_its_running_node_with_the_error(aws: Services, client: Client) -> None:
    # GIVEN a graph whose execution fails with a named error while node a is recorded RUNNING
    graph_id = seed_graph(aws, fail("UpstreamDown", "the upstream is down"))
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    aws.records.start_attempt(run_id, "a", 1, 1, tool="util.echo")

    # WHEN the run is read after the execution ended
    run = wait_for(client, run_id)

    # THEN the run is FAILED with the error's code and message, and so is the node left RUNNING
    assert run["status"] == "FAILED"
    assert run["error"] == {"code": "UpstreamDown", "message": "the upstream is down"}
    assert run["nodes"]["a"]["status"] == "FAILED"
    assert run["nodes"]["a"]["error"]["code"] == "UpstreamDown"
    # AND b, which never ran because the run failed, is CANCELLED (SKIPPED means its conditions were false)
    assert run["nodes"]["b"]["status"] == "CANCELLED"
    types = [e["type"] for e in all_events(client, run_id)]
    assert types.count("RUN_FAILED") == 1
    assert types.count("NODE_FAILED") == 1


def test_cancel_stops_a_running_run_once(aws: Services, client: Client) -> None:
    # GIVEN a running run (its execution waits) with a node RUNNING
    graph_id = seed_graph(aws, wait(30))
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    aws.records.start_attempt(run_id, "a", 1, 1, tool="util.echo")
    assert client.get(f"/runs/{run_id}").json()["status"] == "RUNNING"

    # WHEN it is cancelled
    cancelled = client.post(f"/runs/{run_id}/cancel")

    # THEN the run is CANCELLED at once, its execution ABORTED, the node CANCELLED
    assert cancelled.status == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    run = client.get(f"/runs/{run_id}").json()
    assert run["status"] == "CANCELLED"
    assert run["nodes"]["a"]["status"] == "CANCELLED"
    for _ in range(500):  # moto applies the stop asynchronously
        if aws.sfn.describe_execution(executionArn=run["execution_arn"])["status"] != "RUNNING":
            break
        time.sleep(0.01)
    assert aws.sfn.describe_execution(executionArn=run["execution_arn"])["status"] == "ABORTED"

    # AND cancelling again is a 409; the log holds one RUN_CANCELLED and nothing follows the end
    again = client.post(f"/runs/{run_id}/cancel")
    assert again.status == 409
    assert again.json()["error"]["code"] == "conflict"
    pump()
    events = client.get(f"/runs/{run_id}/events").json()
    assert [e["type"] for e in events["events"]].count("RUN_CANCELLED") == 1
    assert events["next"] is None


def test_the_same_idempotency_key_starts_one_execution(aws: Services, client: Client) -> None:
    # GIVEN a graph
    graph_id = seed_graph(aws, wait(30))
    headers = {"Idempotency-Key": "order-42"}

    # WHEN the same start is retried three times with the same key and body
    replies = [client.post(f"/graphs/{graph_id}/runs", json={"input": {"n": 1}}, headers=headers) for _ in range(3)]

    # THEN every reply is the same run, and Step Functions has one execution
    assert {r.status for r in replies} == {202}
    assert len({r.json()["run_id"] for r in replies}) == 1
    machine = aws.graphs.version(graph_id, 1).state_machine_arn
    assert len(aws.sfn.list_executions(stateMachineArn=machine)["executions"]) == 1

    # AND the same key with another body is refused with a clear message; a new key starts a new run
    other = client.post(f"/graphs/{graph_id}/runs", json={"input": {"n": 2}}, headers=headers)
    assert other.status == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert "Idempotency-Key" in other.json()["error"]["message"]
    fresh = client.post(f"/graphs/{graph_id}/runs", json={"input": {"n": 2}}, headers={"Idempotency-Key": "x"})
    assert fresh.status == 202
    assert fresh.json()["run_id"] != replies[0].json()["run_id"]
    assert len(aws.sfn.list_executions(stateMachineArn=machine)["executions"]) == 2


def test_runs_are_listed_newest_first_in_pages_and_filtered(aws: Services, client: Client) -> None:
    # GIVEN five runs of one graph and one of another, one of them failed
    first = seed_graph(aws, succeed())
    second = seed_graph(aws, fail())
    mine = [client.post(f"/graphs/{first}/runs", json={"input": {"i": i}}).json()["run_id"] for i in range(5)]
    other = client.post(f"/graphs/{second}/runs", json={"input": {}}).json()["run_id"]
    for run_id in [*mine, other]:
        wait_for(client, run_id)

    # WHEN the graph's runs are paged two at a time
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = client.get("/runs", params={"graph_id": first, "limit": 2, "next": cursor}).json()
        assert len(page["runs"]) <= 2
        seen.extend(r["run_id"] for r in page["runs"])
        cursor = page["next"]
        if not cursor:
            break

    # THEN every run appears once, newest first
    assert seen == list(reversed(mine))
    # AND all runs include the other graph's; the status filter keeps only the failed one
    everything = client.get("/runs", params={"limit": 100}).json()["runs"]
    assert {r["run_id"] for r in everything} == {*mine, other}
    failed = client.get("/runs", params={"status": "FAILED", "limit": 100}).json()["runs"]
    assert [r["run_id"] for r in failed] == [other]
    assert client.get("/runs", params={"status": "BOGUS"}).status == 422


def test_events_are_paged_by_cursor_without_loss_or_repeat(aws: Services, client: Client) -> None:
    # GIVEN a finished run with several events
    graph_id = seed_graph(aws, succeed({"a": 1}))
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    wait_for(client, run_id)
    pump()
    whole = client.get(f"/runs/{run_id}/events").json()["events"]

    # WHEN they are read one per page
    paged = all_events(client, run_id, limit=1)

    # THEN the pages add up to the whole log, in order
    assert len(whole) >= 3
    assert paged == whole
    assert all(set(e) >= {"seq", "at", "type", "node", "attempt", "message"} for e in whole)
    assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1))


def test_status_event_and_reconciliation_race_leaves_one_terminal_write(aws: Services, client: Client) -> None:
    # GIVEN a finished run that the API has already reconciled
    from functions.events.handler import Handler

    graph_id = seed_graph(aws, succeed())
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    run = wait_for(client, run_id)
    described = aws.sfn.describe_execution(executionArn=run["execution_arn"])

    # WHEN the status-change event arrives late (and twice)
    event = {
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "detail": {
            "executionArn": run["execution_arn"],
            "name": run_id,
            "status": "SUCCEEDED",
            "stopDate": int(described["stopDate"].timestamp() * 1000),
            "output": described["output"],
        },
    }
    handler = Handler(table=aws.table, sfn=aws.sfn)
    results = [handler(event), handler(event)]

    # THEN nothing new is written: still SUCCEEDED with one RUN_SUCCEEDED
    assert [r["settled"] for r in results] == [False, False]
    assert RunStore(aws.table).get(run_id).status == "SUCCEEDED"
    types = [e["type"] for e in all_events(client, run_id)]
    assert types.count("RUN_SUCCEEDED") == 1


def test_a_running_runs_log_is_served_at_once_and_followed_to_the_end(aws: Services, client: Client) -> None:
    # GIVEN a running run whose only event (RUN_STARTED) was just written and numbered
    graph_id = seed_graph(aws, wait(30))
    run_id = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    pump()

    # WHEN a follower reads the log at once
    first = client.get(f"/runs/{run_id}/events").json()

    # THEN the event is served without delay, numbered 1, with a cursor to follow
    assert [(e["seq"], e["type"]) for e in first["events"]] == [(1, "RUN_STARTED")] and first["next"] == 1
    # AND following from there while nothing new happened yields nothing, still with the cursor
    second = client.get(f"/runs/{run_id}/events", params={"after": first["next"]}).json()
    assert second == {"events": [], "next": 1}
    # AND when the run has ended, following from there yields the rest and then a null cursor
    assert client.post(f"/runs/{run_id}/cancel").status == 200
    pump()
    last = client.get(f"/runs/{run_id}/events", params={"after": second["next"]}).json()
    assert [(e["seq"], e["type"]) for e in last["events"]] == [(2, "RUN_CANCELLED")]
    assert last["next"] is None
    # AND an `after` that is not a seq number is a 400
    assert client.get(f"/runs/{run_id}/events", params={"after": "abc"}).status == 400


def test_a_status_filter_still_fills_each_page(aws: Services, client: Client) -> None:
    # GIVEN six runs, failed and succeeded interleaved
    good, bad = seed_graph(aws, succeed()), seed_graph(aws, fail())
    started = []
    for i in range(6):
        graph_id = bad if i % 2 else good
        started.append((graph_id, client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]))
    for _, run_id in started:
        wait_for(client, run_id)
    failed = [run_id for graph_id, run_id in started if graph_id == bad]

    # WHEN the failed runs are paged two at a time
    pages: list[list[str]] = []
    cursor = None
    for _ in range(10):
        page = client.get("/runs", params={"status": "FAILED", "limit": 2, "next": cursor}).json()
        pages.append([r["run_id"] for r in page["runs"]])
        cursor = page["next"]
        if not cursor:
            break

    # THEN pages are full until the last, newest first, each failed run once, and the last has no cursor
    assert [len(p) for p in pages] == [2, 1]
    assert [r for p in pages for r in p] == list(reversed(failed))
