"""WebSocket connections and their subscriptions to runs, in the one table.

A connection is ``CONN#<connection id>``/``CONN`` (the runs it follows in ``runs``, a string set); a
subscription is ``RUN#<run id>``/``SUB#<connection id>`` (``after``: the last ``seq`` the client had;
``live``: set once the stream function has sent it everything up to then). Both carry ``expires_at``:
API Gateway closes a WebSocket connection after two hours, so a connection whose ``$disconnect`` was
lost disappears by itself. A subscription lives in its run's partition, so the stream function sees it
arrive in the same order as the run's writes and sends the backlog from exactly that point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.store.events import EventLog
from functions.store.table import TableHandle, condition_failed, run_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SUB_PREFIX = "SUB#"
CONNECTION_TTL_SECONDS = 2 * 3600 + 600
"""API Gateway's two-hour connection limit, plus a margin."""
MAX_RUNS_PER_CONNECTION = 1000
"""Runs one connection may follow at once: the connection item lists them, within DynamoDB's 400 KB."""


class TooManySubscriptions(Exception):
    """The connection already follows ``most`` runs (``MAX_RUNS_PER_CONNECTION``)."""

    def __init__(self, most: int) -> None:
        super().__init__(most)
        self.most = most


def connection_pk(connection_id: str) -> str:
    return f"CONN#{connection_id}"


def sub_sk(connection_id: str) -> str:
    return f"{SUB_PREFIX}{connection_id}"


@dataclass(frozen=True)
class Subscription:
    run_id: str
    connection_id: str
    after: int
    live: bool


def parse_subscription(item: dict[str, Any]) -> Subscription:
    return Subscription(
        run_id=str(item["pk"]).removeprefix("RUN#"),
        connection_id=str(item.get("connection_id") or str(item["sk"]).removeprefix(SUB_PREFIX)),
        after=int(item.get("after", 0)),
        live="live" in item,
    )


class Subscriptions(TableHandle):
    """Connection and subscription items (inject ``table`` in tests)."""

    def __init__(self, table: Table | None = None) -> None:
        super().__init__(table)

    def connect(self, connection_id: str, *, source_ip: str | None = None) -> None:
        now = int(time.time())
        item: dict[str, Any] = {
            "pk": connection_pk(connection_id),
            "sk": "CONN",
            "connection_id": connection_id,
            "connected_at": now,
            "expires_at": now + CONNECTION_TTL_SECONDS,
        }
        if source_ip:
            item["source_ip"] = source_ip
        self.table.put_item(Item=item)

    def connected(self, connection_id: str) -> bool:
        key = {"pk": connection_pk(connection_id), "sk": "CONN"}
        return "Item" in self.table.get_item(Key=key, ConsistentRead=True, ProjectionExpression="pk")

    def subscribe(self, connection_id: str, run_id: str, after: int) -> None:
        """Record the subscription (replacing an earlier one of this connection to this run): ``TooManySubscriptions``
        when the connection follows ``MAX_RUNS_PER_CONNECTION`` runs already. The run is marked followed before the
        subscription is written: the stream function looks up the subscribers of followed runs only."""
        try:
            self.table.update_item(
                Key={"pk": connection_pk(connection_id), "sk": "CONN"},
                UpdateExpression="ADD runs :run",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(runs) OR size(runs) < :most OR contains(runs, :id))",
                ExpressionAttributeValues={":run": {run_id}, ":id": run_id, ":most": MAX_RUNS_PER_CONNECTION},
            )
        except ClientError as exc:
            if condition_failed(exc) and self.connected(connection_id):
                raise TooManySubscriptions(MAX_RUNS_PER_CONNECTION) from exc
            raise
        EventLog(self.table).follow(run_id)
        self.table.put_item(
            Item={
                "pk": run_pk(run_id),
                "sk": sub_sk(connection_id),
                "connection_id": connection_id,
                "after": after,
                "expires_at": int(time.time()) + CONNECTION_TTL_SECONDS,
            }
        )

    def unsubscribe(self, connection_id: str, run_id: str) -> bool:
        """Drop one subscription; False when there was none."""
        try:
            self.table.delete_item(
                Key={"pk": run_pk(run_id), "sk": sub_sk(connection_id)}, ConditionExpression="attribute_exists(pk)"
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        self._forget(connection_id, [run_id])
        return True

    def mark_live(self, run_id: str, connection_id: str, seq: int) -> None:
        """The stream function sent this subscriber everything up to ``seq``: new events go to it directly."""
        try:
            self.table.update_item(
                Key={"pk": run_pk(run_id), "sk": sub_sk(connection_id)},
                UpdateExpression="SET live = :seq",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":seq": seq},
            )
        except ClientError as exc:
            if not condition_failed(exc):  # unsubscribed meanwhile
                raise

    def of_run(self, run_id: str) -> list[Subscription]:
        found: list[Subscription] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": run_pk(run_id), ":prefix": SUB_PREFIX},
            "ConsistentRead": True,
        }
        while True:
            response = self.table.query(**kwargs)
            found.extend(parse_subscription(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def end(self, run_id: str, connection_id: str) -> None:
        """The run ended and its subscriber got the final message: the subscription is done."""
        self.table.delete_item(Key={"pk": run_pk(run_id), "sk": sub_sk(connection_id)})
        self._forget(connection_id, [run_id])

    def disconnect(self, connection_id: str) -> None:
        """Remove a connection and all its subscriptions (``$disconnect``, or a post that found it gone)."""
        key = {"pk": connection_pk(connection_id), "sk": "CONN"}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
        runs = item.get("runs")
        for run_id in runs if isinstance(runs, set) else ():
            self.table.delete_item(Key={"pk": run_pk(str(run_id)), "sk": sub_sk(connection_id)})
        self.table.delete_item(Key=key)

    def _forget(self, connection_id: str, run_ids: list[str]) -> None:
        try:
            self.table.update_item(
                Key={"pk": connection_pk(connection_id), "sk": "CONN"},
                UpdateExpression="DELETE runs :runs",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":runs": set(run_ids)},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
