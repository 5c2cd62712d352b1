"""Graph routes through the local stack: create, validate, list (paged), get, versions, delete, definition, diagram."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from functional_support import hooked, wait_for_run

from local import strict

if TYPE_CHECKING:
    import httpx
    import pytest

    from local.cloud import LocalCloud


def chain(name: str = "chain", note: str = "v1", sleep: float = 0) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "first", "tool": "util.echo", "params": {"message": "{{ input.message }}"}}]
    edges = []
    if sleep:
        nodes.append({"id": "nap", "tool": "util.sleep", "params": {"seconds": sleep}})
        edges.append({"from": "first", "to": "nap"})
    nodes.append({"id": "last", "tool": "util.echo", "params": {"note": note, "got": "{{ first.message }}"}})
    edges.append({"from": "nap" if sleep else "first", "to": "last"})
    return {"name": name, "nodes": nodes, "edges": edges}


def test_create_makes_a_state_machine_and_the_graph_reads_back(api: httpx.Client, cloud: LocalCloud) -> None:
    # WHEN a graph is created
    created = api.post("/graphs", json=chain())

    # THEN 201 with the id, version 1 and a state machine named <prefix>-<graph_id>
    assert created.status_code == 201, created.text
    graph = created.json()
    assert graph["version"] == 1
    sfn = boto3.client("stepfunctions", region_name=cloud.region)
    described = sfn.describe_state_machine(stateMachineArn=graph["state_machine_arn"])
    assert described["name"].endswith(f"-{graph['graph_id']}")
    assert graph["console_url"].startswith(f"https://{cloud.region}.console.aws.amazon.com/states/")

    # AND GET returns the spec and its versions; the definition is what Step Functions runs
    detail = api.get(f"/graphs/{graph['graph_id']}").json()
    assert detail["spec"] == chain()
    assert detail["latest_version"] == 1 and detail["name"] == "chain"
    assert [v["version"] for v in detail["versions"]] == [1]
    definition = api.get(f"/graphs/{graph['graph_id']}/definition").json()
    assert definition["version"] == 1
    assert set(definition["definition"]["States"]) >= {"first", "last"}
    diagram = api.get(f"/graphs/{graph['graph_id']}/diagram").json()
    assert diagram["format"] == "mermaid"
    assert "first" in diagram["diagram"] and "last" in diagram["diagram"]


def test_validate_is_a_dry_run(api: httpx.Client, cloud: LocalCloud) -> None:
    sfn = boto3.client("stepfunctions", region_name=cloud.region)
    before = len(sfn.list_state_machines()["stateMachines"])

    # WHEN a good and a bad spec are validated
    good = api.post("/graphs/validate", json=chain())
    bad = api.post(
        "/graphs/validate",
        json={
            "name": "bad",
            "nodes": [
                {"id": "a", "tool": "no.such.tool"},
                {"id": "b", "tool": "util.echo", "params": {"x": "{{ c.out }}"}},
            ],
            "edges": [{"from": "a", "to": "b", "when": "__import__('os')"}],
        },
    )

    # THEN both are 200: the good one with its ASL and diagram, the bad one with errors naming node and edge
    assert good.status_code == 200 and good.json()["valid"] is True
    assert good.json()["definition"]["StartAt"]
    assert "first" in good.json()["diagram"] and "last" in good.json()["diagram"]
    assert bad.status_code == 200, bad.text
    result = bad.json()
    assert result["valid"] is False and result["definition"] is None
    assert any(e.get("node") == "a" for e in result["errors"])
    assert any(e.get("edge") == "a->b" for e in result["errors"])
    # AND nothing was created
    assert len(sfn.list_state_machines()["stateMachines"]) == before


def test_an_invalid_spec_is_422_with_details(api: httpx.Client) -> None:
    reply = api.post(
        "/graphs",
        json={
            "name": "cycle",
            "nodes": [{"id": "a", "tool": "util.echo"}, {"id": "b", "tool": "util.echo"}],
            "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}],
        },
    )
    assert reply.status_code == 422
    error = reply.json()["error"]
    assert error["code"] == "invalid_spec"
    assert error["details"] and all("message" in d for d in error["details"])
    assert "a" in error["message"] and "b" in error["message"]


def test_graphs_are_listed_newest_first_in_pages(api: httpx.Client) -> None:
    # GIVEN five graphs
    ids = [api.post("/graphs", json=chain(f"g{i}")).json()["graph_id"] for i in range(5)]

    # WHEN they are paged two at a time
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = api.get("/graphs", params={"limit": 2, **({"next": cursor} if cursor else {})}).json()
        assert len(page["graphs"]) <= 2
        seen += [g["graph_id"] for g in page["graphs"]]
        cursor = page["next"]
        if not cursor:
            break

    # THEN each appears once, newest first
    assert seen == list(reversed(ids))


def test_delete_hides_the_graph_and_removes_its_state_machines(api: httpx.Client, cloud: LocalCloud) -> None:
    # GIVEN a graph with two versions
    graph = api.post("/graphs", json=chain()).json()
    second = api.put(f"/graphs/{graph['graph_id']}", json=chain(note="v2")).json()

    # WHEN it is deleted
    deleted = api.delete(f"/graphs/{graph['graph_id']}")

    # THEN it is gone from reads, listings and Step Functions, and cannot be run or deleted again
    assert deleted.status_code == 200 and deleted.json() == {"graph_id": graph["graph_id"], "deleted": True}
    assert api.get(f"/graphs/{graph['graph_id']}").status_code == 404
    assert graph["graph_id"] not in [g["graph_id"] for g in api.get("/graphs", params={"limit": 100}).json()["graphs"]]
    assert api.post(f"/graphs/{graph['graph_id']}/runs", json={"input": {}}).status_code == 404
    assert api.delete(f"/graphs/{graph['graph_id']}").status_code == 404
    arns = {m["stateMachineArn"] for m in boto3.client("stepfunctions").list_state_machines()["stateMachines"]}
    assert graph["state_machine_arn"] not in arns and second["state_machine_arn"] not in arns


def test_a_version_published_while_the_graph_is_deleted_leaves_no_state_machine(api: httpx.Client) -> None:
    # GIVEN a graph, and a PUT of a new version landing just before the DELETE hides the graph
    from functions.api import graphs_service
    from functions.api.services import get_services

    graph = api.post("/graphs", json=chain()).json()
    services = get_services()
    published: list[int] = []

    def publish_meanwhile(params: dict[str, Any], **_: Any) -> None:
        if "deleted = :yes" in str(params.get("UpdateExpression")) and not published:
            published.append(graphs_service.publish_version(services, graph["graph_id"], chain(note="v2")).version)

    # WHEN the graph is deleted
    with hooked(services.graphs.table.meta.client, "before-parameter-build.dynamodb.UpdateItem", publish_meanwhile):
        deleted = api.delete(f"/graphs/{graph['graph_id']}")
    # THEN the version was published, and the deletion took its state machine too: none is left behind
    assert published == [2] and deleted.status_code == 200, deleted.text
    assert boto3.client("stepfunctions").list_state_machines()["stateMachines"] == []


def test_a_graph_deleted_while_a_run_of_it_starts_is_deleted_whole(api: httpx.Client) -> None:
    # GIVEN a graph, and its deletion landing while a run of it is recorded but not yet started
    from functions.api import graphs_service
    from functions.api.services import get_services

    graph = api.post("/graphs", json=chain()).json()
    services = get_services()
    outcome: list[str] = []

    def delete_meanwhile(**_: Any) -> None:
        if not outcome:
            try:
                graphs_service.delete_graph(services, graph["graph_id"])
                outcome.append("deleted")
            except Exception as exc:  # the test reports what the deletion raised
                outcome.append(repr(exc))

    # WHEN the run is started
    with hooked(services.sfn, "before-call.sfn.StartExecution", delete_meanwhile):
        started = api.post(f"/graphs/{graph['graph_id']}/runs", json={"input": {"message": "hi"}})
    # THEN the deletion went through whole (no state machine left), and the start is a 404 naming it
    assert outcome == ["deleted"]
    assert boto3.client("stepfunctions").list_state_machines()["stateMachines"] == []
    assert started.status_code == 404, started.text
    assert "graph was deleted" in started.json()["error"]["message"]
    (run,) = api.get("/runs").json()["runs"]
    assert run["status"] == "FAILED" and run["error"]["code"] == "StartExecutionFailed"
    assert api.get(f"/graphs/{graph['graph_id']}").status_code == 404


def test_the_state_machine_quota_used_up_is_a_409_naming_it_and_creates_nothing(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an account whose quota of state machines (10,000 on AWS; 2 here) is used by one graph's two versions
    monkeypatch.setattr(strict, "MAX_STATE_MACHINES", 2)
    graph = api.post("/graphs", json=chain()).json()
    assert api.put(f"/graphs/{graph['graph_id']}", json=chain(note="v2")).status_code == 200

    # WHEN another graph is created, and the graph gets a third version
    created = api.post("/graphs", json=chain(name="other"))
    updated = api.put(f"/graphs/{graph['graph_id']}", json=chain(note="v3"))

    # THEN both are a 409 naming the quota (not a 502 to retry), and nothing is recorded
    for refused in (created, updated):
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert "quota of state machines" in error["message"] and "StateMachineLimitExceeded" in error["message"]
    assert [g["graph_id"] for g in api.get("/graphs").json()["graphs"]] == [graph["graph_id"]]
    assert [v["version"] for v in api.get(f"/graphs/{graph['graph_id']}").json()["versions"]] == [1, 2]
    # AND deleting the graph frees its state machines for new ones
    assert api.delete(f"/graphs/{graph['graph_id']}").status_code == 200
    assert api.post("/graphs", json=chain(name="other")).status_code == 201


def test_a_run_stays_on_the_version_it_started_with(api: httpx.Client) -> None:
    # GIVEN version 1 of a graph and a run of it that is still sleeping
    graph = api.post("/graphs", json=chain(note="v1", sleep=1.0)).json()
    graph_id = graph["graph_id"]
    first = api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "hi"}}).json()

    # WHEN version 2 is published while it runs, and a second run starts
    updated = api.put(f"/graphs/{graph_id}", json=chain(note="v2"))
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.json()["state_machine_arn"] != graph["state_machine_arn"]
    second = api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "hi"}}).json()

    # THEN the first run finishes on version 1's definition and the second runs version 2
    one, two = wait_for_run(api, first["run_id"]), wait_for_run(api, second["run_id"])
    assert (one["status"], two["status"]) == ("SUCCEEDED", "SUCCEEDED")
    assert one["version"] == 1 and one["nodes"]["last"]["output"]["note"] == "v1"
    assert "nap" in one["nodes"]
    assert two["version"] == 2 and two["nodes"]["last"]["output"]["note"] == "v2"
    assert "nap" not in two["nodes"]
    # AND the graph shows both versions, the definition of each on request
    detail = api.get(f"/graphs/{graph_id}").json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["spec"]["nodes"][-1]["params"]["note"] == "v2"
    v1 = api.get(f"/graphs/{graph_id}/definition", params={"version": 1}).json()["definition"]
    assert "nap" in v1["States"] or "nap" in str(v1)
    assert api.get(f"/graphs/{graph_id}/definition", params={"version": 3}).status_code == 404


def test_deleting_a_graph_cancels_its_running_runs(api: httpx.Client) -> None:
    # GIVEN a graph with a run that is sleeping
    graph_id = api.post("/graphs", json=chain(sleep=5)).json()["graph_id"]
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {"message": "x"}}).json()["run_id"]

    # WHEN the graph is deleted
    assert api.delete(f"/graphs/{graph_id}").status_code == 200

    # THEN the run has ended CANCELLED (it stays readable) rather than being left running
    run = api.get(f"/runs/{run_id}").json()
    assert run["status"] == "CANCELLED"
    assert run["graph_id"] == graph_id
