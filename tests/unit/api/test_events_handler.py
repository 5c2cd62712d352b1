"""The status-change function: terminal statuses and RUN_* events from EventBridge events, idempotently."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from functions.events.handler import Handler
from functions.store.runs import RunStore
from tests.unit.api.helpers import all_events, numbered, seed_graph, wait

if TYPE_CHECKING:
    from functions.api.services import Services
    from tests.unit.api.conftest import Client


def status_event(run: dict[str, Any], status: str, **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e1",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [run["execution_arn"]],
        "detail": {
            "executionArn": run["execution_arn"],
            "name": run["run_id"],
            "status": status,
            "startDate": int(time.time() * 1000) - 1000,
            "stopDate": int(time.time() * 1000),
            **detail,
        },
    }


def started_run(aws: Services, client: Client) -> dict[str, Any]:
    graph_id = seed_graph(aws, wait(30))
    return dict(client.post(f"/graphs/{graph_id}/runs", json={"input": {"q": 1}}).json())


def test_a_failed_event_fails_the_run_and_its_running_nodes_once(aws: Services, client: Client) -> None:
    # GIVEN a running run whose node a is RUNNING (it never reported back)
    run = started_run(aws, client)
    aws.records.start_attempt(run["run_id"], "a", 1, 1, tool="util.echo")
    handler = Handler(table=aws.table, sfn=aws.sfn)
    event = status_event(run, "FAILED", error="States.Timeout", cause="Task timed out")

    # WHEN the FAILED event is delivered twice
    first, second = handler(event), handler(event)

    # THEN the first settles the run, the second writes nothing
    assert first == {"settled": True, "run_id": run["run_id"], "status": "FAILED"}
    assert second["settled"] is False
    stored = RunStore(aws.table).get(run["run_id"])
    assert stored.status == "FAILED"
    assert stored.error == {"code": "States.Timeout", "message": "Task timed out"}
    node = aws.records.get_node(run["run_id"], "a", 1)
    assert node is not None and node.status == "FAILED"
    assert node.error == {"code": "States.Timeout", "message": "Task timed out"}
    types = [e["type"] for e in numbered(aws, run["run_id"])]
    assert types.count("RUN_FAILED") == 1 and types.count("NODE_FAILED") == 1


def test_a_terminal_status_is_never_overwritten(aws: Services, client: Client) -> None:
    # GIVEN a run the events function recorded as TIMED_OUT
    run = started_run(aws, client)
    handler = Handler(table=aws.table, sfn=aws.sfn)
    assert handler(status_event(run, "TIMED_OUT"))["settled"] is True

    # WHEN a contradicting SUCCEEDED event and an ABORTED one arrive afterwards
    late = [
        handler(status_event(run, "SUCCEEDED", output=json.dumps({"results": {}}))),
        handler(status_event(run, "ABORTED")),
    ]

    # THEN the run stays TIMED_OUT with one RUN_TIMED_OUT event and no other RUN_* event
    assert [r["settled"] for r in late] == [False, False]
    assert RunStore(aws.table).get(run["run_id"]).status == "TIMED_OUT"
    types = [e["type"] for e in numbered(aws, run["run_id"]) if e["type"].startswith("RUN_")]
    assert types == ["RUN_STARTED", "RUN_TIMED_OUT"]


def test_aborted_is_reported_as_cancelled(aws: Services, client: Client) -> None:
    run = started_run(aws, client)
    aws.records.start_attempt(run["run_id"], "a", 1, 1, tool="util.echo")
    Handler(table=aws.table, sfn=aws.sfn)(status_event(run, "ABORTED"))
    view = client.get(f"/runs/{run['run_id']}").json()
    assert view["status"] == "CANCELLED"
    assert view["nodes"]["a"]["status"] == "CANCELLED"
    assert [e["type"] for e in all_events(client, run["run_id"])][-1] == "RUN_CANCELLED"


def test_events_that_are_not_terminal_or_not_ours_are_ignored(aws: Services, client: Client) -> None:
    run = started_run(aws, client)
    handler = Handler(table=aws.table, sfn=aws.sfn)
    assert handler(status_event(run, "RUNNING"))["settled"] is False
    assert handler({**status_event(run, "SUCCEEDED"), "detail-type": "Something Else"})["settled"] is False
    stranger = {**run, "run_id": "someone-elses-execution"}
    assert handler(status_event(stranger, "SUCCEEDED"))["reason"] == "unknown run"
    assert RunStore(aws.table).get(run["run_id"]).status == "RUNNING"


def test_a_succeeded_event_without_output_reads_it_from_step_functions(aws: Services, client: Client) -> None:
    # GIVEN a run whose execution really succeeded, and an event without output (too large for EventBridge)
    from tests.unit.api.helpers import succeed

    graph_id = seed_graph(aws, succeed({"a": {"v": 1}}))
    started = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()
    for _ in range(200):
        if aws.sfn.describe_execution(executionArn=started["execution_arn"])["status"] != "RUNNING":
            break
        time.sleep(0.01)

    # WHEN the event is delivered
    result = Handler(table=aws.table, sfn=aws.sfn)(status_event(started, "SUCCEEDED", output=None))

    # THEN the run SUCCEEDED and b (absent from the final document) is SKIPPED
    assert result["settled"] is True
    node = aws.records.get_node(started["run_id"], "b", 1)
    assert node is not None and node.status == "SKIPPED"


def test_a_redelivered_status_change_is_numbered_once(aws: Services, client: Client) -> None:
    # GIVEN a run settled FAILED by its status-change event
    run = started_run(aws, client)
    handler = Handler(table=aws.table, sfn=aws.sfn)
    event = status_event(run, "FAILED", error="Boom", cause="it broke")
    assert handler(event)["settled"] is True

    # WHEN EventBridge delivers the event twice more
    again = [handler(event), handler(event)]

    # THEN the status is untouched and RUN_FAILED is in the log once, last, after RUN_STARTED
    assert [a["settled"] for a in again] == [False, False]
    assert [(e["seq"], e["type"]) for e in numbered(aws, run["run_id"])] == [(1, "RUN_STARTED"), (2, "RUN_FAILED")]


class HistoryOnly:
    """A Step Functions client that only answers GetExecutionHistory (a timed-out Lambda task in a branch)."""

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        return {
            "events": [
                {"id": 1, "previousEventId": 0, "type": "ExecutionStarted"},
                {
                    "id": 2,
                    "previousEventId": 1,
                    "type": "ParallelStateEntered",
                    "stateEnteredEventDetails": {"name": "fanout"},
                },
                {
                    "id": 3,
                    "previousEventId": 2,
                    "type": "TaskStateEntered",
                    "stateEnteredEventDetails": {"name": "fetch"},
                },
                {"id": 4, "previousEventId": 3, "type": "TaskScheduled"},
                {"id": 5, "previousEventId": 4, "type": "TaskStarted"},
                {
                    "id": 6,
                    "previousEventId": 5,
                    "type": "TaskTimedOut",
                    "taskTimedOutEventDetails": {"error": "States.Timeout", "cause": "no answer in 10 s"},
                },
                {
                    "id": 7,
                    "previousEventId": 2,
                    "type": "TaskStateEntered",
                    "stateEnteredEventDetails": {"name": "parse"},
                },
                {
                    "id": 8,
                    "previousEventId": 7,
                    "type": "TaskFailed",
                    "taskFailedEventDetails": {"error": "BadInput", "cause": json.dumps({"errorMessage": "no json"})},
                },
            ]
        }


def test_node_errors_are_read_from_the_execution_history() -> None:
    from functions.runs_sync import node_errors

    assert node_errors(HistoryOnly(), "arn:aws:states:us-east-1:1:execution:sm:r") == {  # type: ignore[arg-type]
        "fetch": {"code": "States.Timeout", "message": "no answer in 10 s"},
        "parse": {"code": "BadInput", "message": "no json"},
    }


def test_a_node_recorded_after_the_run_ended_reads_as_ended_with_the_runs_error(aws: Services, client: Client) -> None:
    # GIVEN a run that timed out at its node, settled before the late executor recorded the node RUNNING
    run = started_run(aws, client)
    Handler(table=aws.table, sfn=aws.sfn)(status_event(run, "FAILED", error="States.Timeout", cause="too slow"))
    aws.records.start_attempt(run["run_id"], "a", 1, 1, tool="util.echo")

    # WHEN the run is read
    view = client.get(f"/runs/{run['run_id']}").json()

    # THEN the node is not reported as still running: it FAILED with the run's error
    assert view["status"] == "FAILED"
    assert view["nodes"]["a"]["status"] == "FAILED"
    assert view["nodes"]["a"]["error"] == {"code": "States.Timeout", "message": "too slow"}
