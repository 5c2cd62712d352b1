"""What the cache costs the executor in DynamoDB requests: a node without ``cache`` makes none more than before
(two writes), a cached node one read more, hit or miss; a hit never runs the tool."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from functions.executor.node import NodeExecutor
from functions.store.cache import NodeCache
from functions.store.offload import BlobStore, Offloader
from functions.store.records import Records
from tests.unit.executor.helpers import document, request

if TYPE_CHECKING:
    import pytest


def run_request(run_id: str, *, ttl: int | None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = document()
    doc["run"]["run_id"] = run_id
    fields: dict[str, Any] = {"cache_ttl": ttl} if ttl else {}
    event = request(
        "n", "util.fail", params if params is not None else {"failures": 0, "output": {"v": 1}}, doc=doc, **fields
    )
    event["execution"] = f"arn:aws:states:us-east-1:123456789012:execution:stepgraph-g_000000000001:{run_id}"
    return event


class Clock:
    """The lookup's clock: starts now (as the records' timestamps do), then moved on by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def executor(table: Any, clock: Clock) -> NodeExecutor:
    return NodeExecutor(records=Records(table), offloader=Offloader(BlobStore(table)), cache=NodeCache(table, clock))


def counting(table: Any) -> list[str]:
    calls: list[str] = []
    table.meta.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def test_a_node_without_cache_makes_exactly_its_two_writes(table: Any) -> None:
    ex = executor(table, Clock())
    calls = counting(table)
    ex.handle(ex.parse(run_request("r_00000000000000a1", ttl=None)))
    assert calls == ["UpdateItem", "UpdateItem"]


def test_a_cached_node_adds_one_read_on_a_miss_and_on_a_hit(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    ex = executor(table, clock)
    calls = counting(table)
    # GIVEN a miss: the tool runs, the success write indexes the output
    first = ex.handle(ex.parse(run_request("r_00000000000000a1", ttl=60)))
    assert calls == ["UpdateItem", "Query", "UpdateItem"]
    assert first["results"]["n"] == {"v": 1}
    # WHEN another run asks for the same call within the TTL, with the tool made to explode if it ran
    calls.clear()
    ran: list[Any] = []
    monkeypatch.setattr(ex, "_run_tool", lambda *args, **kwargs: ran.append(args) or {"v": "ran"})
    clock.now += 30
    second = ex.handle(ex.parse(run_request("r_00000000000000a2", ttl=60)))
    # THEN it is one read and the same two writes, the tool did not run, and the record says cached
    assert calls == ["UpdateItem", "Query", "UpdateItem"]
    assert ran == []
    assert second["results"]["n"] == {"v": 1}
    record = Records(table).get_node("r_00000000000000a2", "n", 1)
    assert record is not None and record.cached and record.status == "SUCCEEDED"
    assert record.cached_from is not None and record.cached_from["run_id"] == "r_00000000000000a1"


def test_past_the_ttl_or_with_other_params_the_tool_runs(table: Any) -> None:
    clock = Clock()
    ex = executor(table, clock)
    ex.handle(ex.parse(run_request("r_00000000000000a1", ttl=60)))
    # other params: a miss even within the TTL
    other = ex.handle(ex.parse(run_request("r_00000000000000a2", ttl=60, params={"failures": 0, "output": {"v": 2}})))
    assert other["results"]["n"] == {"v": 2}
    assert not Records(table).get_node("r_00000000000000a2", "n", 1).cached  # type: ignore[union-attr]
    # the same call 61 s later (the table still holds the entry: DynamoDB's TTL has not run) is a miss
    clock.now += 61
    ex.handle(ex.parse(run_request("r_00000000000000a3", ttl=60)))
    assert not Records(table).get_node("r_00000000000000a3", "n", 1).cached  # type: ignore[union-attr]
    # while a node allowing a longer window reuses the newest output
    clock.now += 1
    ex.handle(ex.parse(run_request("r_00000000000000a4", ttl=3600)))
    record = Records(table).get_node("r_00000000000000a4", "n", 1)
    assert record is not None and record.cached and record.cached_from["run_id"] == "r_00000000000000a3"  # type: ignore[index]


def test_a_hit_served_from_the_cache_is_not_itself_an_entry(table: Any) -> None:
    clock = Clock()
    ex = executor(table, clock)
    ex.handle(ex.parse(run_request("r_00000000000000a1", ttl=60)))
    clock.now += 50
    ex.handle(ex.parse(run_request("r_00000000000000a2", ttl=60)))  # a hit: reuses a1's output, 50 s old
    clock.now += 20
    # 70 s after the output was made, a 60 s window finds nothing: the hit did not make the output younger
    ex.handle(ex.parse(run_request("r_00000000000000a3", ttl=60)))
    assert not Records(table).get_node("r_00000000000000a3", "n", 1).cached  # type: ignore[union-attr]


def test_a_reused_offloaded_output_is_stored_again_and_a_lost_one_runs_the_tool(table: Any) -> None:
    clock = Clock()
    ex = executor(table, clock)
    big = {"failures": 0, "output": {"text": "x" * 20_000}}
    ex.handle(ex.parse(run_request("r_00000000000000a1", ttl=60, params=big)))
    # a hit: the output's reference is made again for the run that reuses it, and reads back whole
    second = ex.handle(ex.parse(run_request("r_00000000000000a2", ttl=60, params=big)))
    assert Records(table).get_node("r_00000000000000a2", "n", 1).cached  # type: ignore[union-attr]
    ref = second["results"]["n"]["text"]["$stepgraph_ref"]
    assert ref["run_id"] == "r_00000000000000a2"
    assert ex.offloader.resolve(second["results"]["n"], "r_00000000000000a2") == big["output"]
    # once the stored values of both runs are gone (their runs expired), a lookup still finds the newest entry,
    # cannot read it back, and runs the tool instead of failing
    for run_id in ("r_00000000000000a1", "r_00000000000000a2"):
        blobs = table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :b)",
            ExpressionAttributeValues={":pk": f"RUN#{run_id}", ":b": "BLOB#"},
        )["Items"]
        for item in blobs:
            table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    third = ex.handle(ex.parse(run_request("r_00000000000000a3", ttl=60, params=big)))
    record = Records(table).get_node("r_00000000000000a3", "n", 1)
    assert record is not None and record.status == "SUCCEEDED" and not record.cached
    assert ex.offloader.resolve(third["results"]["n"], "r_00000000000000a3") == big["output"]


def test_a_lookup_whose_store_fails_is_a_miss_never_a_failed_run(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    ex = executor(table, Clock())
    event = run_request("r_00000000000000a1", ttl=60) | {"mode": "lookup", "tool": "lambda:stepgraph-user-f:2"}
    event["ctx"] = event["ctx"].replace('"util.fail"', '"lambda:stepgraph-user-f:2"')

    def throttled(*args: Any, **kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "Query"
        )

    monkeypatch.setattr(ex.cache, "lookup", throttled)
    doc = ex.handle(ex.parse(event))
    # the Choice after the lookup finds the node's key, so the function runs (and its Task's Retry and Catch apply)
    assert "n" in doc["cache"] and doc["results"] == {}
    assert Records(table).get_node("r_00000000000000a1", "n", 1) is None  # a miss writes nothing
