"""The API Gateway shim: HTTP in, REST proxy event (format 1.0) to the API function, proxy response out."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from local.cloud import LocalCloud


@pytest.fixture
def captured(cloud: LocalCloud) -> list[dict[str, Any]]:
    """Replace the API function by one that records the event and answers with a summary of it."""
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], ctx: Any) -> dict[str, Any]:
        events.append(event)
        if event["path"] == "/boom":
            raise RuntimeError("handler crashed")
        if event["path"] == "/binary":
            return {
                "statusCode": 200,
                "headers": {"Content-Type": "image/png"},
                "body": base64.b64encode(b"\x89PNG").decode(),
                "isBase64Encoded": True,
            }
        return {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-One": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": json.dumps({"path": event["path"], "function": ctx.function_name}),
            "isBase64Encoded": False,
        }

    cloud.register(cloud.function_name("ApiFunction"), handler, timeout=29)
    return events


def test_a_request_becomes_a_rest_proxy_event(cloud: LocalCloud, captured: list[dict[str, Any]]) -> None:
    # WHEN a client POSTs JSON with a key and a query string
    with cloud.client(api_key="k-123") as client:
        response = client.post(
            "/graphs/g_1/runs?a=1&a=2&b=x", json={"input": {"n": 1}}, headers={"Idempotency-Key": "abc"}
        )
    # THEN the function's response comes back as HTTP
    assert response.status_code == 201
    assert response.json() == {"path": "/graphs/g_1/runs", "function": "stepgraph-api"}
    assert response.headers["x-one"] == "1"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    # AND the function saw the event API Gateway sends for the {proxy+} resource
    event = captured[0]
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/graphs/g_1/runs"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"proxy": "graphs/g_1/runs"}
    assert event["queryStringParameters"] == {"a": "2", "b": "x"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x"]}
    headers = {k.lower(): v for k, v in event["headers"].items()}
    assert headers["x-api-key"] == "k-123"
    assert headers["idempotency-key"] == "abc"
    assert headers["content-type"] == "application/json"
    assert json.loads(event["body"]) == {"input": {"n": 1}}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "v1"
    assert context["identity"]["apiKey"] == "k-123"
    assert context["requestId"]
    assert context["resourcePath"] == "/{proxy+}"


def test_health_hits_its_own_resource(cloud: LocalCloud, captured: list[dict[str, Any]]) -> None:
    with cloud.client() as client:
        client.get("/health")
    event = captured[0]
    assert event["resource"] == "/health"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["body"] is None
    assert event["requestContext"]["identity"]["apiKey"] is None


def test_a_resource_is_hit_by_its_whole_path_only(cloud: LocalCloud, captured: list[dict[str, Any]]) -> None:
    # GIVEN the template's /health resource and its /{proxy+} for every other path
    # WHEN /health followed by a newline (%0A), and a proxied path with one inside, are requested
    with cloud.client() as client:
        client.get("/health%0A")
        client.get("/runs/a%0Ab")
    # THEN neither is /health's; both reach the proxy resource whole, as API Gateway routes them
    assert [(e["resource"], e["path"]) for e in captured] == [("/{proxy+}", "/health\n"), ("/{proxy+}", "/runs/a\nb")]


def test_binary_bodies_are_base64_both_ways(cloud: LocalCloud, captured: list[dict[str, Any]]) -> None:
    with cloud.client() as client:
        response = client.put("/binary", content=b"\x00\x01\xff", headers={"Content-Type": "application/octet-stream"})
    assert captured[0]["isBase64Encoded"] is True
    assert base64.b64decode(captured[0]["body"]) == b"\x00\x01\xff"
    assert response.content == b"\x89PNG"
    assert response.headers["content-type"] == "image/png"


def test_a_crashing_function_is_a_502_like_api_gateway(cloud: LocalCloud, captured: list[dict[str, Any]]) -> None:
    with cloud.client() as client:
        response = client.get("/boom")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_a_path_with_no_resource_is_403(cloud: LocalCloud, captured: list[dict[str, Any]]) -> None:
    # GIVEN the template routes "/{proxy+}" but not "/" itself
    with cloud.client() as client:
        response = client.get("/")
    assert response.status_code == 403
    assert captured == []
