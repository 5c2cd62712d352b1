"""Runs in DynamoDB: the run item, its listing copy, terminal-status writes and cursor paging.

A run is ``pk=RUN#<id>, sk=RUN`` (indexed on ``gsi1`` by graph: ``GRAPHRUNS#<graph_id>``). To list all
runs newest first without a scan, one immutable listing item ``sk=LIST`` per run is indexed under
``gsi1pk=RUNS``; status is always read from the run item, so the copy never needs updating.
The run item is created stamped with ``RUN_STARTED``; a terminal status is a conditional write (the run
must still be RUNNING) that stamps its ``RUN_*`` event: a terminal status is never overwritten and a
duplicate delivery writes nothing. The stream function numbers stamped events in write order
(functions/store/events.py), so the ``RUN_*`` event follows every node event written before it; the
run's ``finished_at`` is the execution's stop time.

Resume (``RunStore.resume``) is the one write that moves a terminal run back to RUNNING: conditional on
the status it read and on ``resumes`` (how often it was resumed), so of two resumes at once one wins. It
puts the new execution in ``execution_arn``, keeps the earlier ones in ``executions_json`` and stamps
``RUN_RESUMED``. A terminal write (``finish``) given an execution holds only while that execution is the
run's current one, so a late status of an earlier execution neither closes nor reopens the run.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from functions.errors import ConflictError, NotFoundError, StoreError
from functions.store.events import RUN_EVENT, RUN_RESUMED
from functions.store.table import (
    TableHandle,
    clean,
    conditional_update,
    event_stamp,
    listing_page,
    now_iso,
    put_once,
    run_pk,
)
from statemachine.status import RUN_RESUMABLE, RUN_TERMINAL, RunStatus

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ALL_RUNS = "RUNS"
API_TRIGGER = {"type": "api"}
EARLIER_ERROR_CHARS = 500
"""An execution a resume leaves behind keeps this much of its error message (the run's current error keeps
``jsonlimits.MAX_ERROR_MESSAGE``): every earlier execution is served with the run, in ``GET /runs`` too."""


def new_run_id() -> str:
    return f"r_{secrets.token_hex(8)}"


def graph_runs_key(graph_id: str) -> str:
    return f"GRAPHRUNS#{graph_id}"


def from_json(value: Any, default: Any = None) -> Any:
    return json.loads(value) if isinstance(value, str) else default


def to_int(value: Any, default: int = 0) -> int:
    if isinstance(value, Decimal | int):
        return int(value)
    return default


@dataclass
class Run:
    """A run as the API reports it (user JSON already decoded)."""

    run_id: str
    graph_id: str
    version: int
    status: str
    execution_arn: str
    started_at: str
    input: Any = field(default_factory=dict)
    state: Any = None
    finished_at: str | None = None
    error: dict[str, Any] | None = None
    trigger: dict[str, Any] = field(default_factory=lambda: dict(API_TRIGGER))
    """What started the run: ``{"type": "api"}`` or ``{"type": "schedule", "schedule_id", "scheduled_time"}``."""
    resumes: int = 0
    """How often the run was resumed; its current execution is named ``<run_id>-r<resumes>`` after one."""
    earlier_executions: list[dict[str, Any]] = field(default_factory=list)
    """The executions before the current one, oldest first: ``{execution_arn, started_at, finished_at,
    status, error}``."""
    execution_started_at: str | None = None
    """When the current execution started (``started_at`` until the run is resumed)."""

    @property
    def terminal(self) -> bool:
        return self.status in RUN_TERMINAL

    def executions(self) -> list[dict[str, Any]]:
        """Every execution of the run, oldest first, the current one last."""
        current = {
            "execution_arn": self.execution_arn,
            "started_at": self.execution_started_at or self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "error": self.error,
        }
        return [*self.earlier_executions, current]

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Run:
        return cls(
            run_id=str(item["run_id"]),
            graph_id=str(item["graph_id"]),
            version=to_int(item.get("version"), 1),
            status=str(item["status"]),
            execution_arn=str(item.get("execution_arn", "")),
            started_at=str(item["started_at"]),
            input=from_json(item.get("input_json"), {}),
            state=from_json(item.get("state_json")),
            finished_at=item.get("finished_at"),
            error=from_json(item.get("error_json")),
            trigger=from_json(item.get("trigger_json"), dict(API_TRIGGER)),
            resumes=to_int(item.get("resumes")),
            earlier_executions=from_json(item.get("executions_json"), []),
            execution_started_at=item.get("execution_started_at"),
        )


class RunStore:
    """Reads and writes run items; inject ``table`` in tests."""

    def __init__(self, table: Table | None = None) -> None:
        self._handle = TableHandle(table)

    @property
    def table(self) -> Table:
        return self._handle.table

    def create(self, run: Run) -> None:
        """Write the listing copy, then the run item stamped with RUN_STARTED (a crash leaves only an orphan
        copy that no reader follows).

        No transactions here: moto rolls a failed transaction back by restoring a snapshot of the whole table,
        which loses concurrent writes locally; a conditional write that stamps its event is one request, and
        the stream function turns the stamp into the numbered event (as functions.store.records does)."""
        pk = run_pk(run.run_id)
        started = event_stamp(
            "RUN", "RUN_STARTED", run.started_at, f"run started on graph {run.graph_id} version {run.version}"
        )
        item = clean(
            {
                "pk": pk,
                "sk": "RUN",
                "run_id": run.run_id,
                "graph_id": run.graph_id,
                "version": run.version,
                "status": run.status,
                "execution_arn": run.execution_arn,
                "started_at": run.started_at,
                "input_json": json.dumps(run.input),
                "state_json": json.dumps(run.input),
                "gsi1pk": graph_runs_key(run.graph_id),
                "gsi1sk": f"{run.started_at}#{run.run_id}",
                "trigger_json": json.dumps(run.trigger),
            }
        )
        listing = {
            "pk": pk,
            "sk": "LIST",
            "run_id": run.run_id,
            "graph_id": run.graph_id,
            "started_at": run.started_at,
            "gsi1pk": ALL_RUNS,
            "gsi1sk": f"{run.started_at}#{run.run_id}",
        }
        self.table.put_item(Item=listing)
        try:
            created = put_once(self.table, item, stamp=started)
        except ClientError as exc:
            raise StoreError(f"could not record run {run.run_id}: {exc.response['Error'].get('Code')}") from exc
        if not created:
            raise ConflictError(f"run {run.run_id} already exists")

    def set_execution_arn(self, run_id: str, execution_arn: str) -> None:
        self.table.update_item(
            Key={"pk": run_pk(run_id), "sk": "RUN"},
            UpdateExpression="SET execution_arn = :a",
            ExpressionAttributeValues={":a": execution_arn},
        )

    def get(self, run_id: str) -> Run:
        item = self.table.get_item(Key={"pk": run_pk(run_id), "sk": "RUN"}, ConsistentRead=True).get("Item")
        if not item:
            raise NotFoundError(f"no run {run_id!r}")
        return Run.from_item(item)

    def list_runs(
        self, *, graph_id: str | None = None, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[Run], str | None]:
        """Runs newest first, by graph or all, ``status`` filtered; ``limit`` per page unless more than
        ``MAX_PAGES_READ`` index pages had to be read to fill it (then a shorter page, with a cursor)."""
        partition = graph_runs_key(graph_id) if graph_id else ALL_RUNS

        def wanted(items: list[dict[str, Any]]) -> list[Run | None]:
            found = {run.run_id: run for run in self._batch_get([str(i["run_id"]) for i in items])}
            runs = [found.get(str(item["run_id"])) for item in items]
            return [run if run is not None and status in (None, run.status) else None for run in runs]

        return listing_page(self.table, partition, "RUN" if graph_id else "LIST", wanted, limit=limit, cursor=cursor)

    def _batch_get(self, run_ids: list[str]) -> list[Run]:
        """Run items for ``run_ids`` in that order (the index may project keys only)."""
        if not run_ids:
            return []
        found: dict[str, Run] = {}
        request: Any = {self.table.name: {"Keys": [{"pk": run_pk(r), "sk": "RUN"} for r in run_ids]}}
        client = self.table.meta.client  # the resource's client: plain Python values in and out
        for _ in range(10):
            response: Any = client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table.name, []):
                run = Run.from_item(item)
                found[run.run_id] = run
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        return [found[r] for r in run_ids if r in found]

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        state: Any = None,
        finished_at: str | None = None,
        message: str | None = None,
        execution_arn: str | None = None,
    ) -> bool:
        """Move a RUNNING run to terminal ``status`` and write its RUN_* event once.

        Returns False (writing nothing new) when the run is already terminal or unknown, or when
        ``execution_arn`` is given and is not the run's current execution, so duplicate deliveries,
        concurrent reconcilers and an earlier execution of a resumed run cannot overwrite a status or
        duplicate the event.
        """
        if status not in RUN_TERMINAL:
            raise ValueError(f"not a terminal status: {status}")
        at = finished_at or now_iso()
        values: dict[str, Any] = {":t": status, ":f": at, ":r": RunStatus.RUNNING}
        sets = ["#s = :t", "finished_at = :f"]
        if error is not None:
            sets.append("error_json = :e")
            values[":e"] = json.dumps(error)
        if state is not None:
            encoded = json.dumps(state)
            if len(encoded) < 300_000:
                sets.append("state_json = :st")
                values[":st"] = encoded
        text = message or (f"run {status.lower().replace('_', ' ')}" + (f": {error['code']}" if error else ""))
        event = event_stamp("RUN", RUN_EVENT[status], now_iso(), text, error_json=json.dumps(error) if error else None)
        condition = "attribute_exists(pk) AND #s = :r"
        if execution_arn:
            condition += " AND execution_arn = :x"
            values[":x"] = execution_arn
        update = {
            "Key": {"pk": run_pk(run_id), "sk": "RUN"},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
        return conditional_update(self.table, update, stamp=event).done

    def resume(self, run: Run, execution_arn: str, *, at: str | None = None) -> bool:
        """Move the terminal ``run`` (as read) back to RUNNING on ``execution_arn``, stamping ``RUN_RESUMED``.

        Conditional on the run still being as read (its status, current execution and ``resumes``): of two
        resumes at once only one is made; False for the other, which changes nothing.
        """
        if run.status not in RUN_RESUMABLE:
            raise ValueError(f"a {run.status} run cannot be resumed")
        at = at or now_iso()
        number = run.resumes + 1
        ended = run.executions()[-1]
        error = ended.get("error")
        if isinstance(error, dict) and len(str(error.get("message", ""))) > EARLIER_ERROR_CHARS:
            ended["error"] = {**error, "message": str(error["message"])[:EARLIER_ERROR_CHARS] + "..."}
        earlier = [*run.earlier_executions, ended]
        values: dict[str, Any] = {
            ":r": RunStatus.RUNNING,
            ":x": execution_arn,
            ":n": number,
            ":ex": json.dumps(earlier),
            ":at": at,
            ":was": run.status,
            ":old": run.execution_arn,
        }
        resumed = "attribute_not_exists(resumes)" if run.resumes == 0 else "resumes = :seen"
        if run.resumes:
            values[":seen"] = run.resumes
        text = f"run resumed (resume {number}) after it ended {run.status}; nodes that succeeded are not run again"
        event = event_stamp("RUN", RUN_RESUMED, now_iso(), text)
        event["eid"] = f"{event['eid']}#r{number}"
        update = {
            "Key": {"pk": run_pk(run.run_id), "sk": "RUN"},
            "UpdateExpression": (
                "REMOVE finished_at, error_json SET #s = :r, execution_arn = :x, resumes = :n,"
                " executions_json = :ex, execution_started_at = :at"
            ),
            "ConditionExpression": f"attribute_exists(pk) AND #s = :was AND execution_arn = :old AND {resumed}",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
        return conditional_update(self.table, update, stamp=event).done

    def events(self, run_id: str, *, after: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], int, bool]:
        """Events numbered after ``after``: (events in the public shape, the last ``seq`` returned (or
        ``after``), whether more are stored now)."""
        from functions.store.events import EventLog

        page = EventLog(self.table).page(run_id, after=after, limit=limit)
        return page.events, page.cursor, page.next is not None

    def terminal_event_seq(self, run_id: str) -> int | None:
        """The ``seq`` of the run's ``RUN_*`` terminal event once it is numbered, else None."""
        from functions.store.events import EventLog

        return EventLog(self.table).counter(run_id).terminal_seq


__all__ = [
    "RUN_RESUMED",
    "Run",
    "RunStore",
    "new_run_id",
]
