"""Finding a cached output: node results indexed by their cache key.

There is no separate cache item. When a node with ``cache`` succeeds by running its tool, the write that
records it SUCCEEDED also sets ``gsi1pk = CACHE#<key>`` and ``gsi1sk = <finished_at>#<run_id>``
(``Records.succeed_attempt(cache_key=...)``), so the node result itself is the cache entry: no extra request
on a miss, the output's offloaded fields (blobs of the same run) live exactly as long as the entry, and the
entry is deleted with its run (``expires_at``, ``RunRetentionDays``). A lookup is one ``Query`` on ``gsi1``
for the newest entry of the key that finished within the node's ``ttl_seconds``: an older one is a miss even
before DynamoDB's (lazy) TTL deletes it. Failed attempts never carry the keys, nor do outputs served from the
cache (reusing an output does not make it younger).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.conditions import Key

from functions.store.table import EXPIRES_AT, TableHandle, iso
from statemachine.status import NodeStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_dynamodb.service_resource import Table

CACHE_PREFIX = "CACHE#"


def cache_pk(key: str) -> str:
    """The ``gsi1pk`` of the cache entries of ``key``."""
    return f"{CACHE_PREFIX}{key}"


def cache_sk(finished_at: str, run_id: str) -> str:
    """The ``gsi1sk`` of one entry: when its output was made (ISO, sorts as time), then the run."""
    return f"{finished_at}#{run_id}"


def iso_at(epoch: float) -> str:
    """Epoch seconds as the store's timestamps (UTC, microseconds, ``Z``)."""
    return iso(datetime.fromtimestamp(epoch, UTC))


@dataclass(frozen=True)
class CachedOutput:
    """An earlier successful output: as stored (offloaded fields are references signed for ``run_id``)."""

    run_id: str
    node: str
    iteration: int
    output: Any
    finished_at: str

    def origin(self) -> dict[str, Any]:
        """Where a reused output came from, as a node record shows it (``cached_from``)."""
        return {"run_id": self.run_id, "node": self.node, "iteration": self.iteration, "finished_at": self.finished_at}


class NodeCache(TableHandle):
    """Looks up cached outputs (inject ``table`` and ``clock`` in tests)."""

    def __init__(self, table: Table | None = None, clock: Callable[[], float] | None = None) -> None:
        super().__init__(table)
        self.clock = clock or time.time

    def lookup(self, key: str, ttl_seconds: int) -> CachedOutput | None:
        """The newest output of ``key`` made at most ``ttl_seconds`` ago, or None: one ``Query``."""
        now = self.clock()
        response = self.table.query(
            IndexName="gsi1",
            KeyConditionExpression=Key("gsi1pk").eq(cache_pk(key)) & Key("gsi1sk").gte(iso_at(now - ttl_seconds)),
            ScanIndexForward=False,
            Limit=1,
        )
        items = response.get("Items", [])
        if not items:
            return None
        item = items[0]
        expires = item.get(EXPIRES_AT)
        if item.get("status") != NodeStatus.SUCCEEDED or "output_json" not in item:
            return None
        if expires is not None and int(str(expires)) <= now:
            return None  # its run is past retention: its blobs may already be gone
        return CachedOutput(
            run_id=str(item["pk"]).removeprefix("RUN#"),
            node=str(item.get("node", "")),
            iteration=int(str(item.get("iteration", 1))),
            output=json.loads(str(item["output_json"])),
            finished_at=str(item.get("finished_at", "")),
        )
