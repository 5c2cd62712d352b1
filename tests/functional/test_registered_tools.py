"""Registered tools through the API: each its own function (moto's Lambda), run in a sandboxed process."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.functional.functional_support import hooked, run_graph, wait_for_run

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from local.cloud import LocalCloud

SLUGIFY = """
import re

def run(params):
    return {"slug": re.sub(r"[^a-z0-9]+", "-", params["text"].lower()).strip("-")}
"""
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def register(api: httpx.Client, name: str, source: str, schema: dict[str, Any] | None = None, **extra: Any) -> Any:
    body = {"name": name, "description": "test tool", "params_schema": schema or SCHEMA, "source": source, **extra}
    return api.post("/tools", json=body)


def graph(tool: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"name": "uses-a-registered-tool", "nodes": [{"id": "t", "tool": tool, "params": params}]}


def test_a_registered_tool_runs_in_a_graph_and_is_listed(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN a tool registered over the API
    created = register(api, "acme.slugify", SLUGIFY)
    assert created.status_code == 201, created.text
    assert created.json() == {"name": "acme.slugify", "version": 1, "kind": "registered"}
    # WHEN a graph uses it by name and runs
    run = run_graph(api, graph("acme.slugify", {"text": "{{ input.title }}"}), {"title": "Hello, World!"})
    # THEN the node's output is the tool's result, and GET /tools lists it as registered with its schema
    assert run["status"] == "SUCCEEDED", run
    assert run["nodes"]["t"]["output"] == {"slug": "hello-world"}
    tools = {t["name"]: t for t in api.get("/tools").json()["tools"]}
    assert tools["acme.slugify"]["kind"] == "registered"
    assert tools["acme.slugify"]["params_schema"] == SCHEMA
    assert [v["version"] for v in tools["acme.slugify"]["versions"]] == [1]
    assert tools["util.echo"]["kind"] == "builtin"
    # AND it is its own Lambda function under the stack's prefix, with no environment of ours
    config = boto3.client("lambda").get_function_configuration(FunctionName="stepgraph-tool-acme_slugify")
    assert not config.get("Environment", {}).get("Variables")
    # AND every call made (the API creating the function, the state machine invoking it) was within the
    # template's IAM policies
    assert cloud.iam.denials == []


def test_an_exception_fails_the_node_with_its_class_name(cloud: LocalCloud, api: httpx.Client) -> None:
    source = "class QuotaExceeded(Exception):\n    pass\n\n\ndef run(params):\n    raise QuotaExceeded('no slugs')\n"
    assert register(api, "acme.quota", source, {"type": "object"}).status_code == 201
    run = run_graph(api, graph("acme.quota", {}))
    assert run["status"] == "FAILED"
    error = run["nodes"]["t"]["error"]
    assert error["code"] == "QuotaExceeded"
    assert "no slugs" in error["message"]


def test_params_are_checked_against_the_schema_when_the_graph_is_created(api: httpx.Client) -> None:
    assert register(api, "acme.slugify", SLUGIFY).status_code == 201
    refused = api.post("/graphs", json=graph("acme.slugify", {"text": 42}))
    assert refused.status_code == 422, refused.text
    assert any(d["loc"] == "nodes[0].params.text" for d in refused.json()["error"]["details"]), refused.text
    missing = api.post("/graphs", json=graph("acme.slugify", {}))
    assert missing.status_code == 422
    assert "'text' is a required property" in missing.text


def test_a_pattern_that_backtracks_catastrophically_is_matched_at_once(api: httpx.Client) -> None:
    # GIVEN a tool whose schema has a pattern exponential for a backtracking engine (Python's re would spin
    # on the param below until the API function timed out)
    pattern = "^(a+)+$"
    schema = {"type": "object", "properties": {"text": {"type": "string", "pattern": pattern}}}
    assert register(api, "acme.strict", SLUGIFY, schema).status_code == 201
    # WHEN a graph gives it a param that does not match
    refused = api.post("/graphs", json=graph("acme.strict", {"text": "a" * 40 + "!"}))
    # THEN the API answers at once that it does not match; a matching one is taken
    assert refused.status_code == 422, refused.text
    assert f"does not match '{pattern}'" in refused.json()["error"]["details"][0]["message"]
    assert api.post("/graphs", json=graph("acme.strict", {"text": "aaaa"})).status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"source": "def run(params)\n    return 1\n"}, 422, "line 1"),
        ({"source": "x = 1\n" * 50_000 + "def run(p):\n    return p\n"}, 413, "limit"),
        ({"source": "x = " + "-" * 100_000 + "1\ndef run(p):\n    return p\n"}, 422, "nests too deeply"),
        ({"source": "def run(p):\n    return p\n\x00"}, 422, "null bytes"),
        ({"params_schema": {"type": "no-such-type"}}, 422, "JSON Schema"),
        ({"name": "util.echo"}, 409, "built-in"),
        ({"name": "acme.bad\n"}, 422, "lowercase dotted words"),
        ({"params_schema": {"properties": {"x": {"pattern": "(?=a)a"}}}}, 422, "not one RE2 takes"),
        ({"params_schema": {"$ref": "http://127.0.0.1:9/schema.json"}}, 422, "points outside the schema"),
        ({"params_schema": {"$ref": "#"}}, 422, "refers to itself without end"),
        ({"params_schema": {"properties": {"x": {"$ref": "#/$defs/x"}}}}, 422, "points at nothing in the schema"),
        ({"params_schema": {"properties": {"x": {"pattern": "(" * 3000 + ")" * 3000}}}}, 422, "nests too deeply"),
    ],
)
def test_bad_registrations_are_refused_and_leave_no_function(
    api: httpx.Client, body: dict[str, Any], status: int, needle: str
) -> None:
    request = {"name": "acme.bad", "params_schema": {"type": "object"}, "source": "def run(p):\n    return p\n", **body}
    response = api.post("/tools", json=request)
    assert response.status_code == status, response.text
    assert needle in response.text
    functions = boto3.client("lambda").list_functions()["Functions"]
    assert [f["FunctionName"] for f in functions if "-tool-" in f["FunctionName"]] == []


def test_a_taken_name_is_a_conflict(api: httpx.Client) -> None:
    assert register(api, "acme.slugify", SLUGIFY).status_code == 201
    again = register(api, "acme.slugify", SLUGIFY)
    assert again.status_code == 409


def run_tool(api: httpx.Client, name: str, source: str, **extra: Any) -> dict[str, Any]:
    """Register ``source`` as ``name`` and run a one-node graph of it; the node's record."""
    created = register(api, name, source, {"type": "object"}, **extra)
    assert created.status_code == 201, created.text
    run = run_graph(api, graph(name, {}), timeout=90)
    return dict(run["nodes"]["t"])


def test_locally_a_tool_sees_no_secret_in_its_environment(cloud: LocalCloud, api: httpx.Client) -> None:
    # GIVEN the local cloud's API key and AWS credentials in the environment of the process running it
    assert os.environ.get("STEPGRAPH_API_KEY") and os.environ.get("AWS_SECRET_ACCESS_KEY")
    # WHEN a tool returns its environment and its working directory
    source = "import os\n\ndef run(params):\n    return {'env': dict(os.environ), 'cwd': os.getcwd()}\n"
    node = run_tool(api, "acme.env", source)
    # THEN it saw neither, and ran in a scratch directory of its own
    seen = node["output"]["env"]
    assert not [k for k in seen if k.startswith(("AWS_", "STEPGRAPH_"))], seen
    assert os.environ["STEPGRAPH_API_KEY"] not in json.dumps(seen)
    assert node["output"]["cwd"] != os.getcwd()
    assert "stepgraph-tool-" in node["output"]["cwd"]


def test_locally_an_endless_loop_is_stopped_at_its_timeout(api: httpx.Client) -> None:
    node = run_tool(api, "acme.spin", "def run(params):\n    while True:\n        pass\n", timeout_seconds=1)
    assert node["status"] == "FAILED"
    assert node["error"]["code"] == "ToolTimeout"


def test_locally_a_tool_that_ignores_its_timeout_is_killed(api: httpx.Client) -> None:
    source = (
        "import time\n\ndef run(params):\n    while True:\n"
        "        try:\n            time.sleep(60)\n        except BaseException:\n            pass\n"
    )
    node = run_tool(api, "acme.stubborn", source, timeout_seconds=1)
    assert node["status"] == "FAILED"
    assert node["error"]["code"] == "Sandbox.Timedout"


def test_locally_allocating_past_the_memory_limit_fails_the_node_with_a_clear_code(api: httpx.Client) -> None:
    source = "def run(params):\n    hoard = []\n    while True:\n        hoard.append(bytearray(32 * 1024 * 1024))\n"
    node = run_tool(api, "acme.hoard", source)
    assert node["status"] == "FAILED"
    assert node["error"]["code"] == "MemoryLimitExceeded"


def test_locally_a_missing_import_fails_with_the_import_error(api: httpx.Client) -> None:
    node = run_tool(api, "acme.imports", "import no_such_module_for_stepgraph\n\ndef run(params):\n    return 1\n")
    assert node["status"] == "FAILED"
    assert node["error"]["code"] == "ModuleNotFoundError"
    assert "no_such_module_for_stepgraph" in node["error"]["message"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the sandbox drops to nobody only as root")
def test_locally_a_tool_cannot_write_outside_its_scratch_directory(api: httpx.Client, tmp_path: Path) -> None:
    target = tmp_path / "written-by-a-tool"
    source = f"def run(params):\n    open('scratch.txt', 'w').write('ok')\n    open({str(target)!r}, 'w').write('x')\n"
    node = run_tool(api, "acme.writer", source)
    assert node["error"]["code"] == "PermissionError"
    assert not target.exists()


def test_a_graph_runs_the_tool_version_it_was_created_with_until_updated(api: httpx.Client) -> None:
    # GIVEN a graph created with version 1 of a tool
    assert register(api, "acme.ver", "def run(params):\n    return {'v': 1}\n", {"type": "object"}).status_code == 201
    spec = graph("acme.ver", {})
    graph_id = api.post("/graphs", json=spec).json()["graph_id"]
    # WHEN version 2 is published
    body = {"params_schema": {"type": "object"}, "source": "def run(params):\n    return {'v': 2}\n"}
    published = api.put("/tools/acme.ver", json=body)
    assert published.status_code == 200, published.text
    assert published.json() == {"name": "acme.ver", "version": 2, "kind": "registered"}
    # THEN the graph still runs version 1, until the graph is updated
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    assert wait_for_run(api, run_id, 60)["nodes"]["t"]["output"] == {"v": 1}
    assert api.put(f"/graphs/{graph_id}", json=spec).status_code == 200
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    assert wait_for_run(api, run_id, 60)["nodes"]["t"]["output"] == {"v": 2}
    listed = api.get("/tools/acme.ver").json()
    assert [v["version"] for v in listed["versions"]] == [1, 2]


def test_an_update_overtaken_by_another_records_nothing_and_a_retry_records_its_own_code(api: httpx.Client) -> None:
    # GIVEN a tool, and another update of its function landing between this update's code and its publish
    from functions.api.services import get_services
    from functions.api.tools_service import package

    assert register(api, "acme.race", "def run(params):\n    return {'v': 1}\n", {"type": "object"}).status_code == 201
    events = get_services().lambda_.meta.events
    other = {"name": "acme.race", "params_schema": {"type": "object"}, "timeout_seconds": 30, "description": ""}
    other["source"] = "def run(params):\n    return {'v': 'other'}\n"
    overtaken: list[str] = []

    def overtake(params: dict[str, Any], **_: Any) -> None:
        if not overtaken:
            overtaken.append("yes")
            boto3.client("lambda").update_function_code(
                FunctionName="stepgraph-tool-acme_race", ZipFile=package(other, 256), Publish=False
            )

    events.register("before-call.lambda.PublishVersion", overtake, unique_id="overtake")
    body = {"params_schema": {"type": "object"}, "source": "def run(params):\n    return {'v': 2}\n"}
    try:
        # WHEN this update publishes
        first = api.put("/tools/acme.race", json=body)
    finally:
        events.unregister("before-call.lambda.PublishVersion", unique_id="overtake")
    # THEN it is a 409 and records nothing (the version Lambda made holds the other code); a retry records its own
    assert overtaken and first.status_code == 409, first.text
    assert api.get("/tools/acme.race").json()["version"] == 1
    retried = api.put("/tools/acme.race", json=body)
    assert retried.status_code == 200, retried.text
    graph_id = api.post("/graphs", json=graph("acme.race", {})).json()["graph_id"]
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {}}).json()["run_id"]
    assert wait_for_run(api, run_id, 60)["nodes"]["t"]["output"] == {"v": 2}


def test_deleting_a_tool_a_graph_uses_is_refused_naming_the_graph(api: httpx.Client) -> None:
    assert register(api, "acme.slugify", SLUGIFY).status_code == 201
    graph_id = api.post("/graphs", json=graph("acme.slugify", {"text": "x"})).json()["graph_id"]
    refused = api.delete("/tools/acme.slugify")
    assert refused.status_code == 409
    assert graph_id in refused.text
    # once the graph is deleted, the tool and its function go
    assert api.delete(f"/graphs/{graph_id}").status_code == 200
    assert api.delete("/tools/acme.slugify").status_code == 200
    assert api.get("/tools/acme.slugify").status_code == 404
    functions = boto3.client("lambda").list_functions()["Functions"]
    assert [f["FunctionName"] for f in functions if "-tool-" in f["FunctionName"]] == []
    assert api.delete("/tools/util.echo").status_code == 409


def test_a_deletion_landing_while_a_graph_using_the_tool_is_created_is_refused(api: httpx.Client) -> None:
    # GIVEN a registered tool, and a DELETE of it landing while a graph using it creates its state machine
    from functions.api import tools_service
    from functions.api.services import get_services
    from functions.errors import ConflictError

    assert register(api, "acme.raced", SLUGIFY).status_code == 201
    services = get_services()
    outcome: list[str] = []

    def delete_meanwhile(**_: Any) -> None:
        if not outcome:
            try:
                tools_service.delete(services, "acme.raced")
                outcome.append("deleted")
            except ConflictError as exc:
                outcome.append(f"refused: {exc}")

    # WHEN the graph is created
    with hooked(services.sfn, "before-call.sfn.CreateStateMachine", delete_meanwhile):
        created = api.post("/graphs", json=graph("acme.raced", {"text": "{{ input.title }}"}))
    # THEN the deletion is refused naming the graph, and the graph runs its tool
    assert created.status_code == 201, created.text
    graph_id = created.json()["graph_id"]
    assert outcome == [
        f"refused: tool 'acme.raced' is about to be used by graphs being created or updated now: {graph_id};"
        " delete or update them first"
    ]
    run_id = api.post(f"/graphs/{graph_id}/runs", json={"input": {"title": "A B"}}).json()["run_id"]
    assert wait_for_run(api, run_id, 60)["nodes"]["t"]["output"] == {"slug": "a-b"}
    # AND a DELETE now is refused too, until the graph is gone
    assert api.delete("/tools/acme.raced").status_code == 409
    assert api.delete(f"/graphs/{graph_id}").status_code == 200
    assert api.delete("/tools/acme.raced").status_code == 200


def test_a_graph_created_while_its_tool_is_being_deleted_is_refused(api: httpx.Client) -> None:
    # GIVEN a registered tool being deleted, and between the check of its users and the deletion of its function
    # an update of the tool (which would clear the mark of the deletion) and a graph using it
    from functions.api import graphs_service, tools_service
    from functions.api.services import get_services
    from functions.errors import ConflictError

    assert register(api, "acme.doomed", SLUGIFY).status_code == 201
    services = get_services()
    outcome: list[str] = []

    def create_meanwhile(**_: Any) -> None:
        if not outcome:
            try:
                tools_service.publish(services, "acme.doomed", {"params_schema": SCHEMA, "source": SLUGIFY})
                outcome.append("updated")
            except ConflictError as exc:
                outcome.append(f"refused: {exc}")
            try:
                created = graphs_service.create_graph(services, graph("acme.doomed", {"text": "x"}))
                outcome.append(f"created {created.graph_id}")
            except ConflictError as exc:
                outcome.append(f"refused: {exc}")

    # WHEN the tool is deleted
    with hooked(services.lambda_, "before-call.lambda.DeleteFunction", create_meanwhile):
        deleted = api.delete("/tools/acme.doomed")
    # THEN the deletion goes through, the update and the graph are refused and nothing of the graph is left
    assert deleted.status_code == 200, deleted.text
    assert outcome == [
        "refused: tool 'acme.doomed' is being deleted",
        "refused: tool 'acme.doomed' was deleted or is being deleted; the graph was not saved",
    ]
    assert api.get("/graphs").json()["graphs"] == []
    assert boto3.client("stepfunctions").list_state_machines()["stateMachines"] == []
    assert api.get("/tools/acme.doomed").status_code == 404


def test_an_update_whose_tool_is_deleted_meanwhile_is_a_404(api: httpx.Client) -> None:
    # GIVEN a registered tool deleted while an update of it is changing its function
    from functions.api import tools_service
    from functions.api.services import get_services

    assert register(api, "acme.fleeting", SLUGIFY).status_code == 201
    services = get_services()
    deleted: list[str] = []

    def delete_meanwhile(**_: Any) -> None:
        if not deleted:
            tools_service.delete(services, "acme.fleeting")
            deleted.append("deleted")

    # WHEN the update goes on
    with hooked(services.lambda_, "before-call.lambda.UpdateFunctionConfiguration", delete_meanwhile):
        updated = api.put("/tools/acme.fleeting", json={"params_schema": SCHEMA, "source": SLUGIFY})
    # THEN it is a 404 saying the tool was deleted (not a 502 to retry), and the tool stays gone
    assert deleted == ["deleted"]
    assert updated.status_code == 404, updated.text
    assert "deleted meanwhile" in updated.json()["error"]["message"]
    assert api.get("/tools/acme.fleeting").status_code == 404


def test_a_deletion_that_failed_can_be_retried_at_once(api: httpx.Client) -> None:
    # GIVEN a registered tool whose deletion Lambda refuses once (throttled)
    from botocore.exceptions import ClientError

    from functions.api.services import get_services

    assert register(api, "acme.sticky", SLUGIFY).status_code == 201
    refused: list[str] = []

    def throttle(**_: Any) -> None:
        if not refused:
            refused.append("DeleteFunction")
            error: Any = {"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}
            raise ClientError(error, "DeleteFunction")

    # WHEN it is deleted, and the deletion retried
    with hooked(get_services().lambda_, "before-call.lambda.DeleteFunction", throttle):
        first = api.delete("/tools/acme.sticky")
    retried = api.delete("/tools/acme.sticky")
    # THEN the first is a 502 to retry, and the retry (not held back as a deletion under way) deletes it
    assert refused and first.status_code == 502, first.text
    assert retried.status_code == 200, retried.text
    assert api.get("/tools/acme.sticky").status_code == 404


def test_a_failed_update_does_not_keep_the_tool_from_being_deleted(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a graph without the tool, and an update that would use it refused (no state machine left to make)
    from functions.store import tools
    from local import strict

    assert register(api, "acme.unused", SLUGIFY).status_code == 201
    graph_id = api.post("/graphs", json=graph("util.echo", {"message": "x"})).json()["graph_id"]
    monkeypatch.setattr(strict, "MAX_STATE_MACHINES", 1)
    assert api.put(f"/graphs/{graph_id}", json=graph("acme.unused", {"text": "x"})).status_code == 409
    # WHEN the tool is deleted while that update might still be under way, and once it cannot be
    held = api.delete("/tools/acme.unused")
    monkeypatch.setattr(tools, "HOLD_SECONDS", 0)
    deleted = api.delete("/tools/acme.unused")
    # THEN it is held back only as long as an update may still record the graph, then goes
    assert held.status_code == 409 and graph_id in held.text
    assert deleted.status_code == 200, deleted.text
    assert api.get(f"/graphs/{graph_id}").json()["latest_version"] == 1


def test_the_cli_registers_and_lists_a_tool(
    api: httpx.Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import stepgraph_cli as cli

    source, schema = tmp_path / "slugify.py", tmp_path / "slugify.schema.json"
    source.write_text(SLUGIFY)
    schema.write_text(json.dumps(SCHEMA))
    code = cli.main(["tools", "register", str(source), "--name", "acme.slugify", "--schema", str(schema)], client=api)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "registered acme.slugify version 1" in out
    assert cli.main(["tools", "list"], client=api) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "acme.slugify" in line]
    assert listed and "registered" in listed[0] and "1" in listed[0]
    broken = tmp_path / "broken.py"
    broken.write_text("def run(params):\n    return (\n")
    assert cli.main(["tools", "register", str(broken), "--name", "acme.broken"], client=api) == 1
    assert "line 2" in capsys.readouterr().err
