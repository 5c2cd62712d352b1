"""Graphs in DynamoDB: a head item per graph and one immutable item per version.

The head (``GRAPH#<id>``/``GRAPH``) holds the name and ``latest_version`` and is indexed on ``gsi1``
under ``GRAPHS`` while the graph exists; deleting a graph marks the head and drops it from the index, so
listing needs no filter. A new version claims its number with a conditional put, then moves the head
conditionally on the version it was at: two concurrent updates cannot both become version n. No
transactions (moto restores a whole-table snapshot when one fails, losing concurrent writes locally).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.errors import ConflictError, NotFoundError, StoreError
from functions.store.runs import from_json, to_int
from functions.store.table import (
    TableHandle,
    clean,
    decode_cursor,
    encode_cursor,
    graph_pk,
    newest_first,
    now_iso,
    version_sk,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ALL_GRAPHS = "GRAPHS"
MAX_KEPT_NODE_IDS = 256
_NODE_IDS: OrderedDict[tuple[str, str, int], tuple[str, ...]] = OrderedDict()
_NODE_IDS_LOCK = threading.Lock()


def new_graph_id() -> str:
    return f"g_{secrets.token_hex(6)}"


@dataclass
class GraphHead:
    graph_id: str
    name: str
    description: str | None
    latest_version: int
    created_at: str
    updated_at: str
    deleted: bool = False

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> GraphHead:
        return cls(
            graph_id=str(item["graph_id"]),
            name=str(item.get("name", "")),
            description=item.get("description"),
            latest_version=to_int(item.get("latest_version"), 1),
            created_at=str(item["created_at"]),
            updated_at=str(item.get("updated_at", item["created_at"])),
            deleted=bool(item.get("deleted", False)),
        )


@dataclass
class GraphVersion:
    graph_id: str
    version: int
    spec: dict[str, Any]
    definition_sha256: str
    state_machine_arn: str
    created_at: str
    plan: dict[str, Any] | None = None
    """The version's plan (``statemachine.plan``), computed once when it was published."""

    @property
    def node_ids(self) -> list[str]:
        """The ids of the spec's nodes, in spec order."""
        return [str(n.get("id")) for n in self.spec.get("nodes", []) if isinstance(n, dict)]

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> GraphVersion:
        return cls(
            graph_id=str(item["graph_id"]),
            version=to_int(item.get("version"), 1),
            spec=from_json(item.get("spec_json"), {}),
            definition_sha256=str(item.get("definition_sha256", "")),
            state_machine_arn=str(item.get("state_machine_arn", "")),
            created_at=str(item["created_at"]),
            plan=from_json(item.get("plan_json"), None),
        )


class GraphStore:
    """Reads and writes graph heads and versions; inject ``table`` in tests."""

    def __init__(self, table: Table | None = None) -> None:
        self._handle = TableHandle(table)

    @property
    def table(self) -> Table:
        return self._handle.table

    def _version_item(self, version: GraphVersion) -> dict[str, Any]:
        return {
            "pk": graph_pk(version.graph_id),
            "sk": version_sk(version.version),
            "graph_id": version.graph_id,
            "version": version.version,
            "spec_json": json.dumps(version.spec),
            "definition_sha256": version.definition_sha256,
            "state_machine_arn": version.state_machine_arn,
            "created_at": version.created_at,
            **({"plan_json": json.dumps(version.plan)} if version.plan is not None else {}),
        }

    def create(self, version: GraphVersion) -> GraphHead:
        """Write a new graph's version 1, then its head (readers find a graph by its head only)."""
        spec = version.spec
        head = GraphHead(
            graph_id=version.graph_id,
            name=str(spec.get("name", "")),
            description=spec.get("description"),
            latest_version=version.version,
            created_at=version.created_at,
            updated_at=version.created_at,
        )
        item = clean(
            {
                "pk": graph_pk(head.graph_id),
                "sk": "GRAPH",
                "graph_id": head.graph_id,
                "name": head.name,
                "description": head.description,
                "latest_version": head.latest_version,
                "created_at": head.created_at,
                "updated_at": head.updated_at,
                "deleted": False,
                "gsi1pk": ALL_GRAPHS,
                "gsi1sk": f"{head.created_at}#{head.graph_id}",
            }
        )
        self._put_new(self._version_item(version), f"graph {head.graph_id} already exists")
        self._put_new(item, f"graph {head.graph_id} already exists")
        return head

    def add_version(self, version: GraphVersion) -> None:
        """Publish ``version`` (= latest + 1 as the caller read it); 409 if another update won the race.

        The version item is put first (``attribute_not_exists``: it claims the number), then the head is
        moved to it, conditional on the version it was at. A publish that died between the two is
        finished by the next one, which then gets a 409 and retries with the next number.
        """
        conflict = f"graph {version.graph_id} changed while version {version.version} was being published; retry"
        try:
            self._put_new(self._version_item(version), conflict)
        except ConflictError:
            self._finish_stalled_publish(version.graph_id, version.version)
            raise
        if not self._move_head(version):
            raise ConflictError(conflict)

    def _move_head(self, version: GraphVersion) -> bool:
        spec = version.spec
        values: dict[str, Any] = {
            ":v": version.version,
            ":prev": version.version - 1,
            ":u": version.created_at,
            ":n": str(spec.get("name", "")),
            ":no": False,
        }
        sets = ["latest_version = :v", "updated_at = :u", "#n = :n"]
        removes = []
        if spec.get("description") is not None:
            sets.append("description = :d")
            values[":d"] = spec["description"]
        else:
            removes.append("description")
        try:
            self.table.update_item(
                Key={"pk": graph_pk(version.graph_id), "sk": "GRAPH"},
                UpdateExpression="SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
                ConditionExpression="attribute_exists(pk) AND latest_version = :prev AND deleted = :no",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"].get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _finish_stalled_publish(self, graph_id: str, number: int) -> None:
        """If version ``number`` exists but the head is one behind, a publish died midway: finish it."""
        try:
            head = self.get(graph_id)
            if head.latest_version == number - 1:
                self._move_head(self.version(graph_id, number))
        except NotFoundError:
            pass

    def _put_new(self, item: dict[str, Any], conflict: str) -> None:
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"].get("Code") == "ConditionalCheckFailedException":
                raise ConflictError(conflict) from exc
            raise StoreError(f"DynamoDB write failed: {exc.response['Error'].get('Code')}") from exc

    def get(self, graph_id: str) -> GraphHead:
        """The head of a graph that exists (404 for unknown or deleted ids)."""
        item = self._head_item(graph_id)
        if not item or item.get("deleted"):
            raise NotFoundError(f"no graph {graph_id!r}")
        return GraphHead.from_item(item)

    def state(self, graph_id: str) -> Literal["live", "deleted", "missing"]:
        """Whether the graph's head exists, and whether it was deleted (a graph being created has no head yet)."""
        item = self._head_item(graph_id)
        if not item:
            return "missing"
        return "deleted" if item.get("deleted") else "live"

    def _head_item(self, graph_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"pk": graph_pk(graph_id), "sk": "GRAPH"}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def version(self, graph_id: str, version: int) -> GraphVersion:
        item = self.table.get_item(Key={"pk": graph_pk(graph_id), "sk": version_sk(version)}, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            raise NotFoundError(f"graph {graph_id!r} has no version {version}")
        return GraphVersion.from_item(item)

    def node_ids(self, graph_id: str, version: int) -> list[str]:
        """The node ids of a version's spec, in spec order. A version never changes once written, so they are
        kept per container: reading a running run costs no read of its graph."""
        key = (self.table.name, graph_id, version)
        with _NODE_IDS_LOCK:
            kept = _NODE_IDS.get(key)
            if kept is not None:
                _NODE_IDS.move_to_end(key)
                return list(kept)
        ids = self.version(graph_id, version).node_ids
        with _NODE_IDS_LOCK:
            _NODE_IDS[key] = tuple(ids)
            while len(_NODE_IDS) > MAX_KEPT_NODE_IDS:
                _NODE_IDS.popitem(last=False)
        return ids

    def versions(self, graph_id: str) -> list[GraphVersion]:
        """Every version, oldest first."""
        found: list[GraphVersion] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(graph_pk(graph_id)) & Key("sk").begins_with("VERSION#"),
            "ConsistentRead": True,
        }
        while True:
            page = self.table.query(**kwargs)
            found.extend(GraphVersion.from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list_graphs(self, *, limit: int = 20, cursor: str | None = None) -> tuple[list[GraphHead], str | None]:
        """Graphs newest first, one page; the cursor resumes after the last one."""
        start = decode_cursor(cursor, {"pk": None, "sk": "GRAPH", "gsi1pk": ALL_GRAPHS, "gsi1sk": None})
        page = self.table.query(**newest_first(ALL_GRAPHS, limit, start))
        heads: list[GraphHead] = []
        for item in page.get("Items", []):
            if "latest_version" not in item:  # a keys-only projection: read the head itself
                full = self.table.get_item(Key={"pk": item["pk"], "sk": "GRAPH"}).get("Item")
                if not full or full.get("deleted"):
                    continue
                item = full
            heads.append(GraphHead.from_item(item))
        return heads, encode_cursor(page.get("LastEvaluatedKey"))

    def mark_deleted(self, graph_id: str) -> None:
        """Hide a graph: 404 from now on, gone from listings; its versions and runs stay readable by run."""
        try:
            self.table.update_item(
                Key={"pk": graph_pk(graph_id), "sk": "GRAPH"},
                UpdateExpression="SET deleted = :yes, updated_at = :u REMOVE gsi1pk, gsi1sk",
                ConditionExpression="attribute_exists(pk) AND deleted = :no",
                ExpressionAttributeValues={":yes": True, ":no": False, ":u": now_iso()},
            )
        except ClientError as exc:
            if exc.response["Error"].get("Code") == "ConditionalCheckFailedException":
                raise NotFoundError(f"no graph {graph_id!r}") from exc
            raise
