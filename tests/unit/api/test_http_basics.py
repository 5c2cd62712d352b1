"""Health, auth, body limits, malformed JSON, unknown routes, the OpenAPI document and the tool routes."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.unit.api.conftest import Client

from tests.unit.api.conftest import Client as ApiClient


def assert_error(reply, status: int, code: str) -> dict:
    assert reply.status == status, reply.text
    body = reply.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    return body["error"]


def test_health_answers_without_a_key(aws) -> None:
    # GIVEN a client without the API key
    anonymous = ApiClient(key=None)
    # WHEN it asks for /health
    reply = anonymous.get("/health")
    # THEN the API is alive
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}


def test_every_route_but_health_and_docs_refuses_a_missing_or_wrong_key(aws) -> None:
    # GIVEN every operation the OpenAPI document lists, and clients without a key and with a wrong one
    document = ApiClient(key=None).get("/openapi.json").json()
    operations = [
        (method.upper(), path.replace("{graph_id}", "g_1").replace("{run_id}", "r_1").replace("{name}", "x"))
        for path, ops in document["paths"].items()
        for method in ops
    ]
    assert len(operations) >= 16
    for anonymous in (ApiClient(key=None), ApiClient(key="wrong"), ApiClient(key="")):
        for method, path in [*operations, ("GET", "/nowhere")]:
            # WHEN they call it (even with a body that is not JSON)
            reply = anonymous.request(method, path, raw_body="{not json")
            # THEN only /health answers; everything else is 401 in the error shape
            if path == "/health":
                assert reply.status == 200
            else:
                assert_error(reply, 401, "unauthorized")


def test_docs_and_openapi_are_public(aws) -> None:
    anonymous = ApiClient(key=None)
    # WHEN the docs are fetched without a key
    spec = anonymous.get("/openapi.json")
    docs = anonymous.get("/docs")
    # THEN the OpenAPI document describes every route with request and response models
    assert spec.status == 200
    document = spec.json()
    paths = document["paths"]
    expected = {
        ("/health", "get"),
        ("/tools", "get"),
        ("/tools/{name}", "get"),
        ("/graphs", "post"),
        ("/graphs", "get"),
        ("/graphs/validate", "post"),
        ("/graphs/{graph_id}", "get"),
        ("/graphs/{graph_id}", "put"),
        ("/graphs/{graph_id}", "delete"),
        ("/graphs/{graph_id}/definition", "get"),
        ("/graphs/{graph_id}/diagram", "get"),
        ("/graphs/{graph_id}/runs", "post"),
        ("/runs", "get"),
        ("/runs/{run_id}", "get"),
        ("/runs/{run_id}/events", "get"),
        ("/runs/{run_id}/cancel", "post"),
    }
    found = {(path, method) for path, ops in paths.items() for method in ops}
    assert expected <= found
    for path, method in expected:
        operation = paths[path][method]
        ok = [c for c in operation["responses"] if c.startswith("2")]
        assert ok, (path, method)
        assert "application/json" in operation["responses"][ok[0]].get("content", {}), (path, method)
        if method in ("post", "put") and not path.endswith("/cancel"):
            assert "requestBody" in operation, (path, method)
    assert "GraphSpec" in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["apiKey"]["name"] == "x-api-key"
    # AND Swagger UI is served at /docs
    assert docs.status == 200
    assert "swagger" in docs.text.lower()


def test_malformed_json_is_400(client: Client) -> None:
    # WHEN a body is not JSON
    reply = client.request("POST", "/graphs", raw_body='{"name": "x", nodes: [}')
    # THEN 400 with the error shape
    assert_error(reply, 400, "malformed_json")


def test_a_body_over_256_kib_is_413(client: Client) -> None:
    # GIVEN a body just over the limit
    big = {"name": "big", "nodes": [], "description": "x" * (256 * 1024)}
    # WHEN it is posted
    reply = client.post("/graphs", json=big)
    # THEN 413 names the limit
    error = assert_error(reply, 413, "payload_too_large")
    assert "262144" in error["message"]


def test_an_invalid_spec_is_422_naming_the_node_field(client: Client) -> None:
    # GIVEN a spec whose second node has a bad id
    spec = {"name": "bad", "nodes": [{"id": "ok", "tool": "util.echo"}, {"id": "1bad", "tool": "util.echo"}]}
    # WHEN it is posted, or published as a new version of a graph that does not exist
    reply = client.post("/graphs", json=spec)
    # THEN 422 invalid_spec, and the detail names the node's field as the dry run would
    error = assert_error(reply, 422, "invalid_spec")
    assert "nodes[1].id" in [d["loc"] for d in error["details"]]
    dry_run = client.post("/graphs/validate", json=spec).json()
    assert dry_run["valid"] is False and dry_run["errors"] == error["details"]


def test_a_tool_that_is_not_text_is_422_naming_the_node(client: Client) -> None:
    # GIVEN a spec whose node names its tool with an object instead of a string
    spec = {"name": "bad", "nodes": [{"id": "a", "tool": {"name": "util.echo"}}]}
    # WHEN it is posted, and checked by the dry run
    reply = client.post("/graphs", json=spec)
    dry_run = client.post("/graphs/validate", json=spec).json()
    # THEN both answer with the validator's detail on that node's field (not a server error)
    error = assert_error(reply, 422, "invalid_spec")
    assert [(d["loc"], d.get("node")) for d in error["details"]] == [("nodes[0].tool", "a")]
    assert dry_run["valid"] is False and dry_run["errors"] == error["details"]


def test_other_schema_violations_are_422_naming_the_field(client: Client) -> None:
    reply = client.post("/graphs/g_1/runs", json={"input": [1, 2]})
    error = assert_error(reply, 422, "invalid_request")
    assert [d["loc"] for d in error["details"]] == ["input"]
    assert_error(client.get("/runs", params={"limit": "0"}), 422, "invalid_request")


def test_graph_limits_are_422_naming_the_limit(client: Client) -> None:
    # GIVEN a spec with one node over the 500-node limit (well under the body limit)
    spec = {"name": "wide", "nodes": [{"id": f"n{i}", "tool": "util.echo"} for i in range(501)]}
    # WHEN it is posted
    reply = client.post("/graphs", json=spec)
    # THEN 422 with a message naming the limit
    error = assert_error(reply, 422, "limit_exceeded")
    assert "500" in error["message"] and "nodes" in error["message"]


def test_unknown_route_and_unknown_ids_are_404(client: Client) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.get("/graphs/g_000000000000"), 404, "not_found")
    assert_error(client.get("/runs/r_0000000000000000"), 404, "not_found")
    assert_error(client.get("/runs/r_0000000000000000/events"), 404, "not_found")
    assert_error(client.post("/runs/r_0000000000000000/cancel"), 404, "not_found")
    assert_error(client.post("/graphs/g_000000000000/runs", json={"input": {}}), 404, "not_found")


def test_a_path_ending_in_a_newline_names_nothing(client: Client) -> None:
    # GIVEN paths that are a route's path and a newline (%0A), a name no graph, run or tool can have
    for path in ("/tools/\n", "/graphs/\n", "/runs/\n", "/tools\n", "/graphs\n"):
        # WHEN one is requested
        reply = client.get(path)
        # THEN it is 404, not the answer of the route it starts with (the tool list for GET /tools/%0A)
        assert_error(reply, 404, "not_found")


def test_tools_are_listed_with_their_param_schemas(client: Client) -> None:
    # WHEN the tools are listed
    reply = client.get("/tools")
    # THEN util.echo is there with a JSON schema for its params
    assert reply.status == 200
    tools = {t["name"]: t for t in reply.json()["tools"]}
    assert {"util.echo", "util.sleep", "util.fail"} <= set(tools)
    assert tools["util.sleep"]["params_schema"]["type"] == "object"
    # AND one tool (a dotted name) can be fetched alone; an unknown one is 404
    one = client.get("/tools/util.sleep")
    assert one.status == 200
    assert one.json()["name"] == "util.sleep"
    assert_error(client.get("/tools/no.such.tool"), 404, "not_found")


def test_a_bad_cursor_is_400_not_500(client: Client) -> None:
    deepest = base64.urlsafe_b64encode(b"[" * 768 + b"]" * 768).decode()  # 2,048 characters: the longest taken
    for value in ("!!!", "eyJ4IjoxfQ", "bm90IGpzb24", deepest):
        assert_error(client.get("/graphs", params={"next": value}), 400, "bad_request")
        assert_error(client.get("/runs", params={"next": value}), 400, "bad_request")
