"""Runs expire: every item a run leaves in the table (run, listing copy, node results, events, stored large
outputs), whichever function wrote it, carries ``expires_at`` ``RunRetentionDays`` after its last write, so
DynamoDB's TTL deletes it; the graph stays."""

from __future__ import annotations

import time

import boto3
from functional_support import run_graph

from local.cloud import LocalCloud

DAY = 86400


def test_everything_a_run_writes_expires_after_the_retention_and_its_graph_does_not() -> None:
    # GIVEN a stack keeping runs 3 days, and a graph whose first node outputs more than the inline limit
    spec = {
        "name": "expiring",
        "nodes": [
            {"id": "big", "tool": "util.echo", "params": {"text": "x" * 5000}},
            {"id": "each", "tool": "util.echo", "foreach": "{{ input.items }}", "params": {"v": "{{ item }}"}},
        ],
        "edges": [{"from": "big", "to": "each"}],
    }
    env = {"STEPGRAPH_RUN_RETENTION_DAYS": "3", "STEPGRAPH_INLINE_LIMIT": "1024"}
    with LocalCloud(env=env) as cloud, cloud.client(api_key=cloud.api_key) as api:
        before = time.time()
        # WHEN it runs to the end and its status-change event is recorded
        run = run_graph(api, spec, {"items": [1, 2, 3]})
        assert run["status"] == "SUCCEEDED", run
        assert cloud.drain_events(10)
        after = time.time()

        # THEN every item of the run's partition expires 3 days after it was written
        table = boto3.resource("dynamodb", region_name=cloud.region).Table(cloud.table_name)
        items = table.query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"RUN#{run['run_id']}"}
        )["Items"]
        kinds = {str(item["sk"]).split("#")[0] for item in items}
        assert {"RUN", "LIST", "NODE", "EVENT", "BLOB"} <= kinds, kinds
        late = [i["sk"] for i in items if not before + 3 * DAY - 1 <= int(i.get("expires_at", 0)) <= after + 3 * DAY]
        assert late == []
        # AND the graph's items never expire
        graph = table.scan(FilterExpression="begins_with(pk, :g)", ExpressionAttributeValues={":g": "GRAPH#"})
        assert graph["Items"] and all("expires_at" not in item for item in graph["Items"])
