"""Registered tools: a head (``TOOL#<name>``/``TOOL``) listed on ``gsi1`` under ``TOOLS``, one item per
published version (``VERSION#<n>``: the function version it runs, its schema and timeout) and one
``USEDBY#<graph_id>`` pin per graph created or updated with it (what ``DELETE`` checks).

A graph and a deletion of one of its tools can race. Each side writes first and reads second: a graph pins the
tool (``pinned_at``) before checking the head is not being deleted and creating its state machine; ``DELETE``
marks the head (``deleting_until``) before reading the pins. Whichever reads second sees the other's write, so
at least one of them refuses with 409. Both marks hold for ``HOLD_SECONDS``, longer than the API function may
run, so a request that fails or dies between its write and its end blocks the other side no longer than that."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from functions.errors import ConflictError, NotFoundError, StoreError
from functions.store.table import TableHandle, version_sk

ALL_TOOLS = "TOOLS"
# How long a pin of a graph not yet recorded, or a deletion under way, holds (the API function times out at 29 s).
HOLD_SECONDS = 120


def tool_pk(name: str) -> str:
    return f"TOOL#{name}"


@dataclass(frozen=True)
class ToolVersion:
    """One published version of a registered tool."""

    name: str
    version: int
    function_name: str
    function_version: str
    description: str
    params_schema: dict[str, Any]
    timeout_seconds: int
    source_sha256: str
    created_at: str

    @property
    def qualified_name(self) -> str:
        """What a graph's Task invokes: this version of the function, never ``$LATEST``."""
        return f"{self.function_name}:{self.function_version}"

    def item(self) -> dict[str, Any]:
        return {
            "pk": tool_pk(self.name),
            "sk": version_sk(self.version),
            "name": self.name,
            "version": self.version,
            "function_name": self.function_name,
            "function_version": self.function_version,
            "description": self.description,
            "params_schema_json": json.dumps(self.params_schema),
            "timeout_seconds": self.timeout_seconds,
            "source_sha256": self.source_sha256,
            "created_at": self.created_at,
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ToolVersion:
        return cls(
            name=str(item["name"]),
            version=int(item["version"]),
            function_name=str(item["function_name"]),
            function_version=str(item["function_version"]),
            description=str(item.get("description", "")),
            params_schema=json.loads(str(item["params_schema_json"])),
            timeout_seconds=int(item["timeout_seconds"]),
            source_sha256=str(item.get("source_sha256", "")),
            created_at=str(item["created_at"]),
        )


@dataclass(frozen=True)
class Pin:
    """A graph that was created or updated with the tool, or is being so now (``pinned_at``, epoch seconds)."""

    graph_id: str
    pinned_at: int | None

    def recent(self, now: float) -> bool:
        """Pinned less than ``HOLD_SECONDS`` ago: the graph may still be being recorded."""
        return self.pinned_at is not None and self.pinned_at > now - HOLD_SECONDS


class ToolStore(TableHandle):
    """Reads and writes registered tools' items."""

    def head_item(self, version: ToolVersion) -> dict[str, Any]:
        return {
            **version.item(),
            "sk": "TOOL",
            "latest_version": version.version,
            "gsi1pk": ALL_TOOLS,
            "gsi1sk": version.name,
        }

    def create(self, version: ToolVersion) -> None:
        """Record version 1 and the head; 409 when the name is taken (a concurrent registration won)."""
        self._write(version.item(), "attribute_not_exists(pk)", {}, f"tool {version.name!r} already exists")
        try:
            self._write(self.head_item(version), "attribute_not_exists(pk)", {}, "")
        except ConflictError:
            self.table.delete_item(Key={"pk": tool_pk(version.name), "sk": version_sk(version.version)})
            raise ConflictError(f"tool {version.name!r} already exists") from None

    def add_version(self, version: ToolVersion) -> None:
        """Record the next version and move the head to it; 409 if another update got there first."""
        self._write(version.item(), "attribute_not_exists(pk)", {}, f"tool {version.name!r} changed meanwhile")
        self._write(
            self.head_item(version),
            "latest_version = :prev AND (attribute_not_exists(deleting_until) OR deleting_until < :now)",
            {":prev": version.version - 1, ":now": int(time.time())},
            f"tool {version.name!r} changed or is being deleted meanwhile",
        )

    def _write(self, item: dict[str, Any], condition: str, values: dict[str, Any], conflict: str) -> None:
        kwargs: dict[str, Any] = {"Item": item, "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.table.put_item(**kwargs)
        except ClientError as exc:
            if exc.response["Error"].get("Code") == "ConditionalCheckFailedException":
                raise ConflictError(conflict) from exc
            raise StoreError(f"DynamoDB write failed: {exc.response['Error'].get('Code')}") from exc

    def find(self, name: str) -> ToolVersion | None:
        """The latest version of a registered tool, or None."""
        item = self.table.get_item(Key={"pk": tool_pk(name), "sk": "TOOL"}, ConsistentRead=True).get("Item")
        return ToolVersion.from_item(item) if item else None

    def get(self, name: str) -> ToolVersion:
        found = self.find(name)
        if found is None:
            raise NotFoundError(f"no registered tool {name!r}")
        return found

    def _query(self, name: str, prefix: str | None) -> list[dict[str, Any]]:
        condition: Any = Key("pk").eq(tool_pk(name))
        if prefix:
            condition = condition & Key("sk").begins_with(prefix)
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition, "ConsistentRead": True}
        while True:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def versions(self, name: str) -> list[ToolVersion]:
        """Every version, oldest first."""
        return [ToolVersion.from_item(i) for i in self._query(name, "VERSION#")]

    def list_latest(self) -> list[ToolVersion]:
        """Every registered tool's latest version, by name."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"IndexName": "gsi1", "KeyConditionExpression": Key("gsi1pk").eq(ALL_TOOLS)}
        while True:
            page = self.table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        found = [
            self.find(str(i["pk"])[len("TOOL#") :]) if "latest_version" not in i else ToolVersion.from_item(i)
            for i in items
        ]
        return sorted((v for v in found if v is not None), key=lambda v: v.name)

    def pin(self, name: str, graph_id: str) -> None:
        """Record that ``graph_id`` is being created or updated with the tool (before it is checked usable)."""
        item: dict[str, Any] = {"pk": tool_pk(name), "sk": f"USEDBY#{graph_id}", "graph_id": graph_id}
        self.table.put_item(Item={**item, "pinned_at": int(time.time())})

    def pins(self, name: str) -> list[Pin]:
        """The graphs pinning the tool (deleted ones, and ones whose update failed, included: the caller checks)."""
        return [
            Pin(str(i["graph_id"]), int(i["pinned_at"]) if "pinned_at" in i else None)
            for i in self._query(name, "USEDBY#")
        ]

    def usable(self, name: str) -> bool:
        """The tool exists and no deletion of it is under way."""
        item = self.table.get_item(Key={"pk": tool_pk(name), "sk": "TOOL"}, ConsistentRead=True).get("Item")
        return item is not None and int(str(item.get("deleting_until", 0))) < time.time()

    def start_deleting(self, name: str) -> None:
        """Mark the tool as being deleted (graphs pinning it from now on are refused); 404 if it does not exist,
        409 while another deletion of it is under way."""
        try:
            self.table.update_item(
                Key={"pk": tool_pk(name), "sk": "TOOL"},
                UpdateExpression="SET deleting_until = :until",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(deleting_until) OR deleting_until < :now)",
                ExpressionAttributeValues={":until": int(time.time()) + HOLD_SECONDS, ":now": int(time.time())},
            )
        except ClientError as exc:
            if exc.response["Error"].get("Code") != "ConditionalCheckFailedException":
                raise StoreError(f"DynamoDB write failed: {exc.response['Error'].get('Code')}") from exc
            if self.find(name) is None:
                raise NotFoundError(f"no registered tool {name!r}") from exc
            raise ConflictError(f"tool {name!r} is already being deleted") from exc

    def stop_deleting(self, name: str) -> None:
        """Undo ``start_deleting`` (the deletion was refused)."""
        self.table.update_item(
            Key={"pk": tool_pk(name), "sk": "TOOL"},
            UpdateExpression="REMOVE deleting_until",
            ConditionExpression="attribute_exists(pk)",
        )

    def delete(self, name: str) -> None:
        """Remove every item of the tool, the head first (it is gone for readers at once)."""
        self.table.delete_item(Key={"pk": tool_pk(name), "sk": "TOOL"})
        for item in self._query(name, None):
            self.table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
