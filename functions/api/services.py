"""The AWS clients and stores the routes use, created lazily and replaceable in tests."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

import boto3

from functions.settings import Settings, get_settings
from functions.store.graphs import GraphStore
from functions.store.offload import BlobStore, Offloader
from functions.store.records import Records
from functions.store.runs import RunStore
from functions.store.schedules import ScheduleStore
from functions.store.tools import ToolStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_scheduler.client import EventBridgeSchedulerClient
    from mypy_boto3_stepfunctions.client import SFNClient


_clients_lock = threading.RLock()
"""boto3 sessions are not thread-safe while making clients: concurrent first requests (the local cloud serves
them on threads) make them one at a time."""


class Services:
    """Everything that talks to AWS; pass ``table``/``sfn`` to inject, else defaults are made on first use."""

    def __init__(
        self, *, settings: Settings | None = None, table: Table | None = None, sfn: SFNClient | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self._table = table
        self._sfn = sfn

    @cached_property
    def table(self) -> Table:
        with _clients_lock:
            if self._table is None:
                self._table = boto3.resource("dynamodb", region_name=self.settings.region).Table(self.settings.table)
            return self._table

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        """A low-level client (typed attribute values), as Powertools Idempotency expects."""
        with _clients_lock:
            return boto3.client("dynamodb", region_name=self.settings.region)

    @cached_property
    def sfn(self) -> SFNClient:
        with _clients_lock:
            if self._sfn is None:
                self._sfn = boto3.client("stepfunctions", region_name=self.settings.region)
            return self._sfn

    @cached_property
    def lambda_(self) -> LambdaClient:
        """Creates, versions and deletes registered tools' functions."""
        return boto3.client("lambda", region_name=self.settings.region)

    @cached_property
    def scheduler(self) -> EventBridgeSchedulerClient:
        """Creates and deletes the stack's EventBridge Scheduler schedules."""
        with _clients_lock:
            return boto3.client("scheduler", region_name=self.settings.region)

    @cached_property
    def schedules(self) -> ScheduleStore:
        return ScheduleStore(self.table)

    @cached_property
    def tools(self) -> ToolStore:
        return ToolStore(self.table)

    @cached_property
    def graphs(self) -> GraphStore:
        return GraphStore(self.table)

    @cached_property
    def runs(self) -> RunStore:
        return RunStore(self.table)

    @cached_property
    def records(self) -> Records:
        return Records(self.table)

    @cached_property
    def offloader(self) -> Offloader:
        return Offloader(BlobStore(self.table), inline_limit=self.settings.inline_limit)


_lock = threading.Lock()
_current: Services | None = None
_pinned = False


def get_services() -> Services:
    """The installed services, else defaults for the current settings (rebuilt when the environment changes)."""
    global _current
    settings = get_settings()
    with _lock:
        if _current is None or (not _pinned and _current.settings is not settings):
            _current = Services(settings=settings)
        return _current


def use_services(services: Services | None) -> None:
    """Install ``services`` (tests); ``None`` goes back to the defaults."""
    global _current, _pinned
    with _lock:
        _current = services
        _pinned = services is not None
