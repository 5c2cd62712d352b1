"""Registered tools through the API: each its own function (moto's Lambda), run in a sandboxed process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.functional.functional_support import run_graph

if TYPE_CHECKING:
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


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"source": "def run(params)\n    return 1\n"}, 422, "line 1"),
        ({"source": "x = 1\n" * 50_000 + "def run(p):\n    return p\n"}, 413, "limit"),
        ({"params_schema": {"type": "no-such-type"}}, 422, "JSON Schema"),
        ({"name": "util.echo"}, 409, "built-in"),
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
