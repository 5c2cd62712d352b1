"""Schemathesis over /openapi.json against the API handler: no generated request may yield a 5xx.

Every operation of the document gets generated requests (valid and invalid bodies, paths, queries and
headers, all with the API key); each answer must be below 500 and, when an error, in the documented
error shape. The number of generated cases is printed at the end of the module.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import boto3
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from moto import mock_aws
from requests.structures import CaseInsensitiveDict
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from functions.api.handler import lambda_handler
from functions.api.services import Services, use_services
from functions.settings import get_settings
from tests.unit.api.conftest import API_KEY, TABLE, LambdaContext, create_table
from tests.unit.api.helpers import SUMMARY, seed_graph, succeed

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

EXAMPLES_PER_OPERATION = 25
CASES: dict[str, Any] = {"count": 0, "by_status": {}}
KNOWN: dict[str, str] = {}
"""Ids that exist (a graph, a run of it): every other generated request uses them, to reach past the 404s."""


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Just enough of API Gateway: the HTTP request as a REST proxy event for ``lambda_handler``."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    try:
        text, is_b64 = raw.decode(), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(raw).decode(), True
    event = {
        "resource": "/{proxy+}",
        "path": environ.get("PATH_INFO") or "/",
        "httpMethod": environ["REQUEST_METHOD"],
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"stage": "Prod", "requestId": "fuzz", "identity": {"sourceIp": "127.0.0.1"}},
        "body": text if raw else None,
        "isBase64Encoded": is_b64,
    }
    result = lambda_handler(event, LambdaContext())
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    out_headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    out_headers += [(k, str(v)) for k, values in (result.get("multiValueHeaders") or {}).items() for v in values]
    start_response(f"{result['statusCode']} X", out_headers)
    return [data]


@pytest.fixture(scope="module", autouse=True)
def stack() -> Iterator[None]:
    """One moto stack for the module, with a real graph and run so some generated ids can exist."""
    patch = pytest.MonkeyPatch()
    patch.setenv("STEPGRAPH_TABLE", TABLE)
    patch.setenv("STEPGRAPH_API_KEY", API_KEY)
    get_settings.cache_clear()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        services = Services(
            settings=get_settings(), table=create_table(), sfn=boto3.client("stepfunctions", region_name="us-east-1")
        )
        use_services(services)
        # The stack's EventBridge Scheduler group, which every deployed stack has (POST /graphs/{id}/schedules).
        boto3.client("scheduler", region_name="us-east-1").create_schedule_group(Name=get_settings().schedule_group)
        KNOWN["graph_id"] = seed_graph(services, succeed())
        KNOWN["run_id"] = start_through_handler(KNOWN["graph_id"])
        try:
            yield
        finally:
            use_services(None)
            patch.undo()
            get_settings.cache_clear()
            statuses = dict(sorted(CASES["by_status"].items()))
            server_errors = sum(n for status, n in statuses.items() if status >= 500)
            line = (
                f"schemathesis: {CASES['count']} generated cases over /openapi.json, "
                f"{server_errors} answered 5xx; statuses: {statuses}"
            )
            SUMMARY.append(line)


def start_through_handler(graph_id: str) -> str:
    """Start a run through the handler; its id."""
    from tests.unit.api.conftest import proxy_event

    event = proxy_event("POST", f"/graphs/{graph_id}/runs", body={"input": {}}, headers={"x-api-key": API_KEY})
    return str(json.loads(lambda_handler(event, LambdaContext())["body"])["run_id"])


schema = schemathesis.openapi.from_wsgi("/openapi.json", wsgi_app)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_input_yields_a_server_error(case: schemathesis.Case) -> None:
    # GIVEN a generated request with the API key
    if CASES["count"] % 2 and case.path_parameters and case.method != "DELETE":
        for name in ("graph_id", "run_id"):  # half the cases address things that exist
            if name in case.path_parameters:
                case.path_parameters[name] = KNOWN[name]
    # WHEN the handler answers it
    case.headers = CaseInsensitiveDict({**dict(case.headers or {}), "x-api-key": API_KEY})
    response = case.call()
    CASES["count"] += 1
    CASES["by_status"][response.status_code] = CASES["by_status"].get(response.status_code, 0) + 1
    # THEN it is never a 5xx, and every error has the documented body
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])
    if response.status_code >= 400:
        body = json.loads(response.text)
        assert set(body) == {"error"}, body
        assert {"code", "message", "details"} <= set(body["error"]), body
    # AND the answer is one the document declares, in the declared shape
    case.validate_response(response, checks=[status_code_conformance, response_schema_conformance])
