"""Fixtures for the executor and store tests: a moto DynamoDB table shaped like template.yaml's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from functions.settings import get_settings
from tests.unit.table_stream import STREAM_SPEC, attach, detach

if TYPE_CHECKING:
    from collections.abc import Iterator

    from functions.store.records import Records

TABLE = "stepgraph-unit"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and the settings the executor reads, re-read for each test."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "STEPGRAPH_TABLE": TABLE,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "stepgraph-tests",
        "POWERTOOLS_SERVICE_NAME": "executor",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STEPGRAPH_INLINE_LIMIT", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def table(aws_env: None) -> Iterator[Any]:
    """The single table (pk/sk, GSI gsi1) in moto."""
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        created = resource.create_table(
            TableName=TABLE,
            StreamSpecification=STREAM_SPEC,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gsi1pk", "gsi1sk")
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        attach(created)
        try:
            yield created
        finally:
            detach()


@pytest.fixture
def records(table: Any) -> Iterator[Records]:
    """The handler's executor bound to the unit table (tests that need other options define their own)."""
    from functions.executor import handler
    from functions.executor.node import NodeExecutor
    from functions.store.offload import BlobStore, Offloader
    from functions.store.records import Records

    recs = Records(table)
    handler.set_executor(NodeExecutor(records=recs, offloader=Offloader(BlobStore(table)), logger=handler.logger))
    yield recs
    handler.set_executor(None)
