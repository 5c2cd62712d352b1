"""Schedules end to end in the local cloud: the API creates them in EventBridge Scheduler (moto), the local
scheduler fires them at their times (its clock is the test's), and the schedule function starts runs that say
which schedule and fire time started them."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from tests.functional.functional_support import wait_for_run

if TYPE_CHECKING:
    import httpx

    from local.cloud import LocalCloud

ECHO = {
    "name": "scheduled-echo",
    "nodes": [{"id": "say", "tool": "util.echo", "params": {"message": "{{ input.message }}"}}],
    "edges": [],
}
GROUP = "stepgraph"


def create_graph(api: httpx.Client, spec: dict[str, Any] = ECHO) -> str:
    response = api.post("/graphs", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["graph_id"])


def create_schedule(api: httpx.Client, graph_id: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/graphs/{graph_id}/schedules", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def aws_schedules() -> list[dict[str, Any]]:
    return list(boto3.client("scheduler").list_schedules(GroupName=GROUP)["Schedules"])


def runs_of(api: httpx.Client, graph_id: str) -> list[dict[str, Any]]:
    response = api.get("/runs", params={"graph_id": graph_id})
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_create_list_and_delete_a_schedule(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a graph
    graph_id = create_graph(api)
    before = datetime.now(UTC).replace(microsecond=0)
    # WHEN a schedule is created with a rate, an input and a time zone
    created = create_schedule(
        api, graph_id, expression="rate(5 minutes)", input={"message": "hi"}, timezone="Europe/Paris"
    )
    # THEN it answers what it made and when it fires next (five minutes after its creation)
    assert created["schedule_id"].startswith("s_")
    assert (created["expression"], created["timezone"], created["input"]) == (
        "rate(5 minutes)",
        "Europe/Paris",
        {"message": "hi"},
    )
    assert created["state"] == "ENABLED"
    assert before + timedelta(minutes=5) <= parse(created["next_run_at"]) <= before + timedelta(minutes=5, seconds=2)
    # AND EventBridge Scheduler holds it in the stack's group, targeting the schedule function as SchedulerRole
    (aws,) = aws_schedules()
    detail = boto3.client("scheduler").get_schedule(Name=aws["Name"], GroupName=GROUP)
    assert detail["ScheduleExpression"] == "rate(5 minutes)"
    assert detail["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert detail["Target"]["Arn"] == cloud.template.arn("ScheduleFunction")
    assert detail["Target"]["RoleArn"] == cloud.template.arn("SchedulerRole")
    assert "<aws.scheduler.scheduled-time>" in detail["Target"]["Input"]
    # AND the graph's listing shows it, with its next fire time
    second = create_schedule(api, graph_id, expression="cron(0 9 ? * MON-FRI *)")
    listed = api.get(f"/graphs/{graph_id}/schedules").json()["schedules"]
    assert [s["schedule_id"] for s in listed] == [created["schedule_id"], second["schedule_id"]]
    assert all(s["next_run_at"] for s in listed)
    assert parse(listed[1]["next_run_at"]).hour == 9 and listed[1]["timezone"] == "UTC"
    # WHEN one is deleted THEN it is gone from the listing and from EventBridge Scheduler
    gone = api.delete(f"/graphs/{graph_id}/schedules/{created['schedule_id']}")
    assert gone.status_code == 200, gone.text
    assert gone.json() == {"graph_id": graph_id, "schedule_id": created["schedule_id"], "deleted": True}
    assert [s["schedule_id"] for s in api.get(f"/graphs/{graph_id}/schedules").json()["schedules"]] == [
        second["schedule_id"]
    ]
    assert len(aws_schedules()) == 1
    # AND deleting it again, or an unknown one, or on an unknown graph, is 404
    assert api.delete(f"/graphs/{graph_id}/schedules/{created['schedule_id']}").status_code == 404
    assert api.delete(f"/graphs/{graph_id}/schedules/s_000000000000").status_code == 404
    assert api.get("/graphs/g_000000000000/schedules").status_code == 404
    assert api.post("/graphs/g_000000000000/schedules", json={"expression": "rate(1 hour)"}).status_code == 404


@pytest.mark.parametrize(
    ("expression", "field", "col"),
    [
        ("cron(0 9 * * * *)", "day-of-week", 14),  # both day fields given: AWS wants '?' in one
        ("cron(61 9 * * ? *)", "minutes", 6),
        ("cron(0 9 ? * 8 *)", "day-of-week", 14),  # AWS days are 1-7
        ("cron(0 9 * JAX ? *)", "month", 14),
        ("cron(0 9 * * ?)", None, 15),  # five fields
        ("rate(1 minutes)", None, 8),  # 1 takes the singular
        ("rate(30 seconds)", None, 9),  # EventBridge Scheduler's shortest rate is a minute
        ("every day", None, 1),
    ],
)
def test_a_malformed_expression_is_422_with_its_position(
    api: httpx.Client, cloud: LocalCloud, expression: str, field: str | None, col: int
) -> None:
    graph_id = create_graph(api)
    response = api.post(f"/graphs/{graph_id}/schedules", json={"expression": expression})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_schedule"
    (detail,) = error["details"]
    assert detail["loc"] == "expression"
    assert detail["position"] == {"col": col}
    assert detail.get("field") == field
    # AND nothing was made
    assert api.get(f"/graphs/{graph_id}/schedules").json()["schedules"] == []
    assert aws_schedules() == []


def test_an_unknown_time_zone_a_bad_body_and_an_oversized_input_are_refused(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    graph_id = create_graph(api)
    url = f"/graphs/{graph_id}/schedules"
    zone = api.post(url, json={"expression": "rate(1 hour)", "timezone": "Mars/Olympus_Mons"})
    assert zone.status_code == 422
    assert zone.json()["error"]["details"] == [{"loc": "timezone", "message": "not an IANA time zone name"}]
    assert api.post(url, json={"expression": "rate(1 hour)", "extra": 1}).status_code == 422
    assert api.post(url, json={"expression": "rate(1 hour)", "input": [1]}).status_code == 422
    assert api.post(url, content=b'{"expression": "rate(1 hour)", "input": {"x": NaN}}').status_code == 400
    huge = {"blob": "x" * 130_000}
    assert api.post(url, json={"expression": "rate(1 hour)", "input": huge}).status_code == 413
    assert api.get(url).json()["schedules"] == []


def test_a_graph_has_at_most_twenty_schedules(api: httpx.Client, cloud: LocalCloud) -> None:
    from functions.api.schedules_service import MAX_SCHEDULES_PER_GRAPH

    graph_id = create_graph(api)
    made = [create_schedule(api, graph_id, expression=f"cron({i} 9 * * ? *)") for i in range(MAX_SCHEDULES_PER_GRAPH)]
    over = api.post(f"/graphs/{graph_id}/schedules", json={"expression": "rate(1 hour)"})
    assert over.status_code == 422
    assert over.json()["error"]["code"] == "limit_exceeded"
    # AND a deleted one frees its slot
    api.delete(f"/graphs/{graph_id}/schedules/{made[0]['schedule_id']}")
    create_schedule(api, graph_id, expression="rate(1 hour)")
    assert len(aws_schedules()) == MAX_SCHEDULES_PER_GRAPH


def test_a_schedule_fires_on_time_and_its_run_carries_its_trigger(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a schedule every minute, and a run started through the API
    graph_id = create_graph(api)
    schedule = create_schedule(api, graph_id, expression="rate(1 minute)", input={"message": "tick"})
    by_api = api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "manual"}})
    assert by_api.json()["trigger"] == {"type": "api"}
    due = parse(schedule["next_run_at"])
    # WHEN the local scheduler's clock is just before the fire time THEN nothing fires
    cloud.scheduler.tick(due - timedelta(seconds=1))
    assert len(runs_of(api, graph_id)) == 1
    # WHEN it reaches the fire time
    cloud.scheduler.tick(due + timedelta(seconds=1))
    # THEN one run started, with the schedule's input, saying which schedule and fire time started it
    (fire,) = cloud.scheduler.fires
    assert fire.delivered and fire.result is not None and fire.result.json()["started"] is True
    assert abs((fire.scheduled_time - due).total_seconds()) <= 1  # the listing's time, to the second
    runs = runs_of(api, graph_id)
    assert len(runs) == 2
    scheduled = next(r for r in runs if r["trigger"]["type"] == "schedule")
    fired_at = fire.scheduled_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    trigger = {"type": "schedule", "schedule_id": schedule["schedule_id"], "scheduled_time": fired_at}
    assert scheduled["trigger"] == trigger
    run = wait_for_run(api, scheduled["run_id"], cloud=cloud)
    assert run["status"] == "SUCCEEDED"
    assert run["trigger"] == trigger
    assert run["input"] == {"message": "tick"}
    assert run["nodes"]["say"]["output"] == {"message": "tick"}
    assert api.get(f"/runs/{by_api.json()['run_id']}").json()["trigger"] == {"type": "api"}
    # AND Scheduler's role invoked only what it may, and the API called Scheduler within its rights
    assert cloud.iam.denials == []
    assert {c.action for c in cloud.iam.calls if c.principal == "SchedulerRole"} == {"lambda:InvokeFunction"}
    # AND the next fires are a minute apart
    cloud.scheduler.tick(due + timedelta(minutes=2, seconds=1))
    first = fire.scheduled_time
    assert [f.scheduled_time for f in cloud.scheduler.fires] == [first + timedelta(minutes=k) for k in range(3)]
    assert len(runs_of(api, graph_id)) == 4


def test_the_same_fire_delivered_twice_starts_one_run(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a fire that was delivered
    graph_id = create_graph(api)
    schedule = create_schedule(api, graph_id, expression="rate(1 minute)", input={"message": "once"})
    cloud.scheduler.tick(parse(schedule["next_run_at"]))
    (fire,) = cloud.scheduler.fires
    assert fire.result is not None
    first = fire.result.json()
    # WHEN Scheduler delivers it again, twice at once
    results: list[Any] = []

    def again() -> None:
        results.append(cloud.scheduler.redeliver(fire))

    threads = [threading.Thread(target=again) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN every delivery answers the same run, and the graph has that one run
    assert all(r.delivered for r in results), [r.error for r in results]
    assert {r.result.json()["run_id"] for r in results} == {first["run_id"]}
    assert [r["run_id"] for r in runs_of(api, graph_id)] == [first["run_id"]]
    # AND the next fire time is another run
    cloud.scheduler.tick(parse(schedule["next_run_at"]) + timedelta(minutes=1))
    assert len(runs_of(api, graph_id)) == 2


def test_cron_fires_in_the_schedules_time_zone_and_a_disabled_schedule_does_not_fire(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    # GIVEN a schedule at 09:00 in New York every day, and the same at 09:00 UTC, disabled in Scheduler
    graph_id = create_graph(api)
    ny = create_schedule(api, graph_id, expression="cron(0 9 * * ? *)", timezone="America/New_York")
    utc = create_schedule(api, graph_id, expression="cron(0 9 * * ? *)")
    client = boto3.client("scheduler")
    name = next(s["Name"] for s in aws_schedules() if s["Name"].endswith(utc["schedule_id"]))
    current = client.get_schedule(Name=name, GroupName=GROUP)
    client.update_schedule(
        Name=name,
        GroupName=GROUP,
        ScheduleExpression=current["ScheduleExpression"],
        FlexibleTimeWindow=current["FlexibleTimeWindow"],
        Target=current["Target"],
        State="DISABLED",
    )
    # THEN New York's 09:00 is 13:00 or 14:00 UTC, and the listing says so
    due = parse(ny["next_run_at"])
    assert due.hour in (13, 14) and due.astimezone(ZoneInfo("America/New_York")).hour == 9
    # WHEN a day passes
    cloud.scheduler.tick(datetime.now(UTC) + timedelta(days=1, minutes=1))
    # THEN only the enabled schedule fired, once, at its time
    assert [(f.schedule_arn.rsplit("-", 1)[-1], f.scheduled_time) for f in cloud.scheduler.fires] == [
        (ny["schedule_id"], due)
    ]


def test_deleting_a_graph_deletes_its_schedules(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a graph with two schedules, and another graph with one
    graph_id = create_graph(api)
    create_schedule(api, graph_id, expression="rate(1 minute)")
    create_schedule(api, graph_id, expression="cron(0 9 * * ? *)")
    other = create_graph(api)
    kept = create_schedule(api, other, expression="rate(1 minute)")
    # WHEN the graph is deleted
    assert api.delete(f"/graphs/{graph_id}").status_code == 200
    # THEN its schedules are gone from EventBridge Scheduler (the other graph's stays) and fire no more
    assert [s["Name"] for s in aws_schedules()] == [f"{other}-{kept['schedule_id']}"]
    cloud.scheduler.tick(datetime.now(UTC) + timedelta(minutes=2))
    assert {f.schedule_arn.rsplit("/", 1)[-1].split("-")[0] for f in cloud.scheduler.fires} == {other}
    assert api.get(f"/graphs/{graph_id}/schedules").status_code == 404


def test_a_fire_of_a_schedule_deleted_meanwhile_starts_nothing(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN the event of a fire of a schedule that no longer exists (the delete raced the fire)
    graph_id = create_graph(api)
    schedule = create_schedule(api, graph_id, expression="rate(1 minute)")
    api.delete(f"/graphs/{graph_id}/schedules/{schedule['schedule_id']}")
    event = {"graph_id": graph_id, "schedule_id": schedule["schedule_id"], "scheduled_time": "2026-11-30T09:00:00Z"}
    # WHEN the schedule function gets it THEN it starts nothing, and succeeds (Scheduler does not retry)
    result = cloud.invoke("ScheduleFunction", event)
    assert result.function_error is None
    assert result.json()["started"] is False
    assert runs_of(api, graph_id) == []


def test_the_scheduler_thread_fires_by_its_own_clock(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN the local scheduler's thread running on a clock three minutes ahead
    graph_id = create_graph(api)
    create_schedule(api, graph_id, expression="rate(1 minute)")
    cloud.scheduler.clock = lambda: datetime.now(UTC) + timedelta(minutes=3)
    cloud.scheduler.start(max_wait=0.05)
    # THEN it fires the three fires due by that clock without being ticked
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while len(runs_of(api, graph_id)) < 3 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    cloud.scheduler.stop()
    assert len(runs_of(api, graph_id)) == 3
    assert all(r["trigger"]["type"] == "schedule" for r in runs_of(api, graph_id))


def test_the_cli_creates_lists_and_deletes_schedules(
    api: httpx.Client, cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    import stepgraph_cli as cli

    graph_id = create_graph(api)
    # WHEN a schedule is created with the CLI THEN it prints its id and next run time
    args = ["schedules", "create", graph_id, "--expression", "cron(0 9 ? * MON-FRI *)", "--timezone", "Asia/Tokyo"]
    assert cli.main([*args, "--input", '{"message": "morning"}'], client=api) == 0
    out = capsys.readouterr().out
    schedule_id = re.search(r"\bs_[0-9a-f]{12}\b", out)
    assert schedule_id and "next run at 20" in out
    # AND `schedules list` shows it
    assert cli.main(["schedules", "list", graph_id], client=api) == 0
    listed = capsys.readouterr().out
    assert schedule_id.group(0) in listed and "Asia/Tokyo" in listed and "morning" in listed
    # WHEN an expression is malformed THEN the CLI points at the column, and exits 3
    assert cli.main(["schedules", "create", graph_id, "--expression", "cron(0 25 * * ? *)"], client=api) == 3
    err = capsys.readouterr().err
    assert "expression (hours, col 8)" in err
    assert "    cron(0 25 * * ? *)\n           ^" in err
    # AND `schedules delete` removes it
    assert cli.main(["schedules", "delete", graph_id, schedule_id.group(0)], client=api) == 0
    assert "deleted" in capsys.readouterr().out
    assert api.get(f"/graphs/{graph_id}/schedules").json()["schedules"] == []
    # AND `runs show` of a scheduled run says which schedule and fire started it
    other = create_schedule(api, graph_id, expression="rate(1 minute)", input={"message": "shown"})
    cloud.scheduler.tick(parse(other["next_run_at"]) + timedelta(seconds=1))
    (fire,) = cloud.scheduler.fires
    assert fire.result is not None
    run_id = fire.result.json()["run_id"]
    wait_for_run(api, run_id, cloud=cloud)
    assert cli.main(["runs", "show", run_id], client=api) == 0
    shown = capsys.readouterr().out
    assert f"started by schedule {other['schedule_id']} for {fire.scheduled_time:%Y-%m-%dT%H:%M:%SZ}" in shown


def test_the_sample_fire_event_starts_a_run_when_its_ids_exist(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN events/schedule-fire.json (for `sam local invoke ScheduleFunction -e`) naming a real schedule
    sample = json.loads((Path(__file__).resolve().parents[2] / "events" / "schedule-fire.json").read_text())
    graph_id = create_graph(api)
    schedule = create_schedule(api, graph_id, expression="rate(1 hour)", input={"message": "sample"})
    event = {**sample, "graph_id": graph_id, "schedule_id": schedule["schedule_id"]}
    # WHEN the schedule function is invoked with it
    result = cloud.invoke("ScheduleFunction", event)
    # THEN it starts the run for that fire time
    assert result.function_error is None, result.payload
    body = result.json()
    assert body["started"] is True
    run = api.get(f"/runs/{body['run_id']}").json()
    assert run["trigger"] == {
        "type": "schedule",
        "schedule_id": schedule["schedule_id"],
        "scheduled_time": sample["scheduled_time"],
    }
    # AND an event that is not a fire starts nothing
    assert cloud.invoke("ScheduleFunction", {"graph_id": graph_id}).json()["started"] is False
    assert cloud.invoke("ScheduleFunction", {**event, "scheduled_time": "<aws.scheduler.scheduled-time>"}).json() == {
        "started": False,
        "reason": "not a schedule event (graph_id, schedule_id, scheduled_time)",
    }


def test_a_schedule_starts_the_latest_version_of_an_updated_graph(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a schedule made on version 1, then version 2 published
    graph_id = create_graph(api)
    schedule = create_schedule(api, graph_id, expression="rate(1 minute)", input={"message": "v"})
    updated = {**ECHO, "nodes": [{"id": "say", "tool": "util.echo", "params": {"message": "v2 {{ input.message }}"}}]}
    assert api.put(f"/graphs/{graph_id}", json=updated).json()["version"] == 2
    # WHEN it fires THEN the run is of version 2
    cloud.scheduler.tick(parse(schedule["next_run_at"]) + timedelta(seconds=1))
    (run,) = runs_of(api, graph_id)
    assert run["version"] == 2
    assert wait_for_run(api, run["run_id"], cloud=cloud)["nodes"]["say"]["output"] == {"message": "v2 v"}


def test_the_openapi_document_describes_the_schedule_routes(api: httpx.Client, cloud: LocalCloud) -> None:
    document = api.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/graphs/{graph_id}/schedules"]) == {"get", "post"}
    assert set(paths["/graphs/{graph_id}/schedules/{schedule_id}"]) == {"delete"}
    created = paths["/graphs/{graph_id}/schedules"]["post"]
    assert {"201", "404", "413", "422"} <= set(created["responses"])
    body = document["components"]["schemas"]["CreateSchedule"]
    assert set(body["properties"]) == {"expression", "input", "timezone"}
    assert "ScheduleTrigger" in document["components"]["schemas"]


def test_concurrent_creates_never_pass_the_cap_and_concurrent_deletes_free_one_slot_each(
    api: httpx.Client, cloud: LocalCloud
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from functions.api.schedules_service import MAX_SCHEDULES_PER_GRAPH

    graph_id = create_graph(api)
    # WHEN more creates than the cap arrive at once
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda i: api.post(f"/graphs/{graph_id}/schedules", json={"expression": f"cron({i} 9 * * ? *)"}),
                range(MAX_SCHEDULES_PER_GRAPH + 5),
            )
        )
    # THEN exactly the cap succeed, the rest are refused, and Scheduler holds exactly those
    assert sorted(r.status_code for r in codes) == [201] * MAX_SCHEDULES_PER_GRAPH + [422] * 5
    listed = api.get(f"/graphs/{graph_id}/schedules").json()["schedules"]
    assert len(listed) == len(aws_schedules()) == MAX_SCHEDULES_PER_GRAPH
    # WHEN the same schedule is deleted twice at once THEN one delete wins, the other is 404, one slot is freed
    victim = listed[0]["schedule_id"]
    with ThreadPoolExecutor(2) as pool:
        deletes = list(pool.map(lambda _: api.delete(f"/graphs/{graph_id}/schedules/{victim}"), range(2)))
    assert sorted(r.status_code for r in deletes) == [200, 404]
    create_schedule(api, graph_id, expression="rate(1 hour)")
    assert api.post(f"/graphs/{graph_id}/schedules", json={"expression": "rate(2 hours)"}).status_code == 422
