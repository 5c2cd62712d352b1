"""API unit tests: API Gateway REST proxy events into ``lambda_handler``, AWS answered by moto.

Powertools style: build the event, call the handler, read the proxy response. Step Functions executes
state machines in moto (Pass/Wait states stand in for compiled graphs where the compiler is not needed).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from functions.api.services import Services, use_services
from functions.settings import get_settings
from local import strict
from tests.unit.table_stream import STREAM_SPEC, attach, detach

if TYPE_CHECKING:
    from collections.abc import Iterator

TABLE = "stepgraph-unit"
API_KEY = "unit-key"
ROLE = "arn:aws:iam::123456789012:role/stepgraph-states"


@dataclass
class LambdaContext:
    function_name: str = "stepgraph-api"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stepgraph-api"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def proxy_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
    base64_body: bool = False,
) -> dict:
    """A REST API (payload 1.0) proxy event as API Gateway sends it."""
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    if base64_body and text is not None:
        text = base64.b64encode(text.encode()).decode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": "id",
            "identity": {"sourceIp": "127.0.0.1"},
            "accountId": "123456789012",
            "apiId": "api",
        },
        "body": text,
        "isBase64Encoded": base64_body,
    }


class Client:
    """Calls ``lambda_handler`` with proxy events; sends the API key unless told not to."""

    def __init__(self, key: str | None = API_KEY) -> None:
        self.key = key

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Reply:
        from functions.api.handler import lambda_handler

        all_headers = dict(headers or {})
        if self.key is not None:
            all_headers.setdefault("x-api-key", self.key)
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        event = proxy_event(method, path, body=json_body, headers=all_headers, query=query or None, **kwargs)
        result = lambda_handler(event, LambdaContext())
        headers_out = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers_out[key.lower()] = values[0]
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        return Reply(int(result["statusCode"]), headers_out, body)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, json_body=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        return self.request("PUT", path, json_body=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)


def create_table(region: str = "us-east-1") -> Any:
    resource = boto3.resource("dynamodb", region_name=region)
    return resource.create_table(
        TableName=TABLE,
        StreamSpecification=STREAM_SPEC,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
            }
        ],
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """moto with executing state machines (AWS-strict), our table, and the API's services bound to them."""
    monkeypatch.setenv("STEPGRAPH_TABLE", TABLE)
    monkeypatch.setenv("STEPGRAPH_API_KEY", API_KEY)
    monkeypatch.setenv("STEPGRAPH_STATES_ROLE_ARN", ROLE)
    monkeypatch.setenv("STEPGRAPH_PREFIX", "unit")
    get_settings.cache_clear()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        undo_strict = strict.install()  # AWS's limits, as the local cloud has them
        table = create_table()
        services = Services(
            settings=get_settings(), table=table, sfn=boto3.client("stepfunctions", region_name="us-east-1")
        )
        use_services(services)
        attach(table)
        try:
            yield services
        finally:
            detach()
            use_services(None)
            get_settings.cache_clear()
            undo_strict()


@pytest.fixture
def client(aws: Services) -> Client:
    return Client()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the schemathesis figure, unless the bad-input figures section (tests/unit/fuzz) prints it."""
    from tests.unit.api.helpers import SUMMARY

    plugins = terminalreporter.config.pluginmanager.get_plugins()
    if any(str(getattr(p, "__file__", "")).replace("\\", "/").endswith("unit/fuzz/conftest.py") for p in plugins):
        return
    for line in SUMMARY:
        terminalreporter.write_line(line)
