"""Every item of a run's partition carries ``expires_at`` (the table's TTL attribute) when a store writes it;
graphs never do."""

from __future__ import annotations

import time
from typing import Any

import pytest

from functions.settings import get_settings
from functions.store.graphs import GraphStore, GraphVersion
from functions.store.offload import BlobStore
from functions.store.runs import Run, RunStore
from functions.store.table import TableHandle, update_with_expiry

DAY = 86400


@pytest.fixture
def retention(monkeypatch: pytest.MonkeyPatch, table: Any) -> int:
    monkeypatch.setenv("STEPGRAPH_RUN_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    return 7


def test_a_run_its_listing_and_blobs_expire_after_the_retention(table: Any, retention: int) -> None:
    # GIVEN a run started, a large value stored for it, and the run finished
    before = time.time()
    runs = RunStore(table)
    runs.create(Run("r_1", "g_1", 1, "RUNNING", "arn:execution", "2026-11-30T00:00:00Z", input={"a": 1}))
    BlobStore(table).put("r_1", "fetch", 1, "text", "x" * 500_000)
    assert runs.finish("r_1", "SUCCEEDED", state={"done": True})
    after = time.time()

    # THEN every item of the run expires `retention` days after it was written, in epoch seconds
    items = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "RUN#r_1"})["Items"]
    kinds = {str(i["sk"]).split("#")[0] for i in items}
    assert {"RUN", "LIST", "BLOB"} <= kinds  # events are numbered by the stream function: the functional test
    for item in items:
        assert before + retention * DAY - 1 <= int(item["expires_at"]) <= after + retention * DAY, item["sk"]


def test_graphs_do_not_expire(table: Any, retention: int) -> None:
    # GIVEN a graph version written through the store
    GraphStore(table).create(
        GraphVersion(
            graph_id="g_1",
            version=1,
            spec={"name": "g", "nodes": [], "edges": []},
            definition_sha256="0" * 64,
            state_machine_arn="arn:sm",
            created_at="2026-11-30T00:00:00Z",
        )
    )
    # THEN none of its items carries an expiry
    items = table.scan()["Items"]
    assert items and all("expires_at" not in i for i in items)


def test_an_update_to_a_run_item_renews_its_expiry(table: Any, retention: int) -> None:
    # GIVEN a run item written with an old expiry
    table.put_item(Item={"pk": "RUN#r_2", "sk": "RUN", "status": "RUNNING", "expires_at": 1})
    # WHEN a store updates it
    TableHandle(table).table.update_item(
        Key={"pk": "RUN#r_2", "sk": "RUN"},
        UpdateExpression="REMOVE stale SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": "SUCCEEDED"},
    )
    # THEN it expires `retention` days after this write
    item = table.get_item(Key={"pk": "RUN#r_2", "sk": "RUN"})["Item"]
    assert item["status"] == "SUCCEEDED"
    assert int(item["expires_at"]) >= time.time() + retention * DAY - 5


@pytest.mark.parametrize(
    ("expression", "stamped"),
    [
        ("SET a = :a", "SET expires_at = :stepgraph_expires_at, a = :a"),
        ("REMOVE x SET y = :y", "REMOVE x SET expires_at = :stepgraph_expires_at, y = :y"),
        ("ADD n :one", "SET expires_at = :stepgraph_expires_at ADD n :one"),
        ("SET expires_at = :e", "SET expires_at = :e"),
    ],
)
def test_the_expiry_joins_the_one_set_clause(expression: str, stamped: str) -> None:
    update = {"Key": {"pk": "RUN#r", "sk": "RUN"}, "UpdateExpression": expression}
    assert update_with_expiry(update)["UpdateExpression"] == stamped
