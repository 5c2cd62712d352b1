"""Resume's run item: back to RUNNING on a new execution, and settled only from that execution."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.events.handler import Handler
from functions.store.runs import RunStore
from tests.unit.api.helpers import numbered, seed_graph, wait
from tests.unit.api.test_events_handler import status_event

if TYPE_CHECKING:
    from functions.api.services import Services
    from tests.unit.api.conftest import Client


def test_a_late_status_of_the_execution_a_run_was_resumed_from_neither_closes_nor_reopens_it(
    aws: Services, client: Client
) -> None:
    # GIVEN a run that failed, then was resumed (its new execution waits), with node a started by the resume
    graph_id = seed_graph(aws, wait(30))
    first = client.post(f"/graphs/{graph_id}/runs", json={"input": {"q": 1}}).json()
    handler = Handler(table=aws.table, sfn=aws.sfn)
    assert handler(status_event(first, "FAILED", error="Boom", cause="it broke"))["settled"] is True
    resumed = client.post(f"/runs/{first['run_id']}/resume")
    assert resumed.status == 202, resumed.text
    assert resumed.json()["execution_arn"].endswith(f":{first['run_id']}-r1")
    aws.records.start_attempt(first["run_id"], "a", 1, 1, tool="util.echo", resume=1)

    # WHEN the first execution's status arrives again, late (FAILED, then a contradicting ABORTED)
    late = [handler(status_event(first, "FAILED", error="Boom")), handler(status_event(first, "ABORTED"))]

    # THEN the run stays RUNNING on its new execution and the node the resume runs is untouched
    assert [r["settled"] for r in late] == [False, False]
    run = RunStore(aws.table).get(first["run_id"])
    assert (run.status, run.resumes, run.finished_at, run.error) == ("RUNNING", 1, None, None)
    node = aws.records.get_node(first["run_id"], "a", 1)
    assert node is not None and node.status == "RUNNING"

    # AND the new execution's own status settles it, read back from its execution name
    current = {"run_id": f"{first['run_id']}-r1", "execution_arn": resumed.json()["execution_arn"]}
    assert handler(status_event(current, "FAILED", error="Again", cause="still broken"))["settled"] is True
    run = RunStore(aws.table).get(first["run_id"])
    assert (run.status, run.error) == ("FAILED", {"code": "Again", "message": "still broken"})
    assert [e["status"] for e in run.executions()] == ["FAILED", "FAILED"]
    types = [e["type"] for e in numbered(aws, first["run_id"]) if e["type"].startswith("RUN_")]
    assert types == ["RUN_STARTED", "RUN_FAILED", "RUN_RESUMED", "RUN_FAILED"]
    view = client.get(f"/runs/{first['run_id']}").json()
    assert [e["execution_arn"] for e in view["executions"]] == [first["execution_arn"], current["execution_arn"]]
    assert view["execution_arn"] == current["execution_arn"]


def test_a_resume_that_lost_the_race_changes_nothing(aws: Services, client: Client) -> None:
    # GIVEN a failed run read by two resumers; one of them resumes it
    graph_id = seed_graph(aws, wait(30))
    first = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()
    Handler(table=aws.table, sfn=aws.sfn)(status_event(first, "FAILED", error="Boom"))
    store = RunStore(aws.table)
    seen = store.get(first["run_id"])
    assert store.resume(seen, "arn:aws:states:us-east-1:123456789012:execution:x:one")

    # WHEN the other writes its resume from what it read
    lost = store.resume(seen, "arn:aws:states:us-east-1:123456789012:execution:x:two")

    # THEN it is refused and the winner's execution stays the run's
    assert lost is False
    run = store.get(first["run_id"])
    assert (run.status, run.resumes, run.execution_arn.rsplit(":", 1)[1]) == ("RUNNING", 1, "one")


def test_a_timed_out_run_is_resumed_and_a_resume_needs_a_run_that_ended(aws: Services, client: Client) -> None:
    # GIVEN a run its execution's TIMED_OUT status settled
    graph_id = seed_graph(aws, wait(30))
    first = client.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()
    Handler(table=aws.table, sfn=aws.sfn)(status_event(first, "TIMED_OUT"))

    # WHEN it is resumed, then resumed again while the resume runs
    resumed = client.post(f"/runs/{first['run_id']}/resume")
    again = client.post(f"/runs/{first['run_id']}/resume")

    # THEN the first is 202 with the resume's number, the second 409: the run is RUNNING
    assert resumed.status == 202, resumed.text
    assert {k: resumed.json()[k] for k in ("run_id", "status", "resumes")} == {
        "run_id": first["run_id"],
        "status": "RUNNING",
        "resumes": 1,
    }
    assert again.status == 409, again.text
    run = client.get(f"/runs/{first['run_id']}").json()
    assert [e["status"] for e in run["executions"]] == ["TIMED_OUT", "RUNNING"]
    assert run["executions"][0]["error"]["code"] == "States.Timeout"
    listed = client.get("/runs", params={"status": "RUNNING", "graph_id": graph_id}).json()["runs"]
    assert [r["run_id"] for r in listed] == [first["run_id"]]
