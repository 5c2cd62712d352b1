"""EventBridge Scheduler's delivery, emulated: moto stores schedules (CreateSchedule, DeleteSchedule, ...) but
never fires them. ``LocalScheduler`` reads moto's schedules and, at each fire time, invokes the target function
in-process with the event Scheduler would send: the target's ``Input`` with ``<aws.scheduler.scheduled-time>``
(and the other context attributes) filled in.

- Fire times come from ``functions.schedules.expressions`` (croniter for cron), in the schedule's time zone;
  a rate schedule counts its intervals from its creation; an ``at`` schedule fires once.
- Only ENABLED schedules fire; one that was DISABLED does not catch up the fires it missed (as in AWS).
- Each fire is delivered once, oldest first; a function error is retried ``max_retries`` times, then the fire
  goes to ``dead_letters`` (the target's dead-letter queue in AWS). ``redeliver`` sends a fire again, as
  Scheduler's at-least-once delivery may.
- The clock is injectable: tests call ``tick(now)`` with the time they want, ``make dev`` runs ``start()``
  (a thread that wakes at the next fire time, and at least every ``max_wait`` seconds to see new schedules).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from functions.errors import ScheduleError
from functions.schedules import expressions
from local.iam import SCHEDULER_PRINCIPAL

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.iam import IamAudit
    from local.lambdas import InvokeResult, LambdaDispatcher

LOG = logging.getLogger(__name__)
RETRY_DELAY_SECONDS = 0.05
MAX_FIRES_PER_TICK = 1000
"""A clock moved far ahead (or a long pause) delivers at most this many late fires of one schedule per tick."""


def iso(moment: datetime) -> str:
    """Scheduler's format of ``<aws.scheduler.scheduled-time>``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Fire:
    """One fire of a schedule and what became of its delivery."""

    schedule_arn: str
    scheduled_time: datetime
    function: str
    event: Any
    attempts: int = 0
    result: InvokeResult | None = None
    error: str | None = None
    delivered_at: float | None = None
    """``time.time()`` when the function returned (the bench measures due time to run start)."""

    @property
    def delivered(self) -> bool:
        return self.result is not None and self.result.function_error is None


@dataclass
class _Cursor:
    created: datetime
    checked: datetime
    """Fires up to here have been delivered (or skipped while the schedule was disabled)."""
    signature: tuple[str, str] = ("", "")
    expression: expressions.Expression | None = None


@dataclass
class LocalScheduler:
    """Fires moto's EventBridge Scheduler schedules into the in-process Lambda dispatcher."""

    dispatcher: LambdaDispatcher
    account_id: str
    region: str
    iam: IamAudit | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    max_retries: int = 2
    fires: list[Fire] = field(default_factory=list)
    dead_letters: list[Fire] = field(default_factory=list)
    _cursors: dict[str, _Cursor] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------ the thread (make dev)

    def start(self, *, max_wait: float = 1.0) -> None:
        """Fire schedules on time from a thread until ``stop``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(max_wait,), name="local-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self, max_wait: float) -> None:
        while not self._stop.is_set():
            try:
                following = self.tick()
            except Exception:  # the scheduler must outlive any one bad schedule
                LOG.exception("local scheduler tick failed")
                following = None
            wait = max_wait
            if following is not None:
                wait = min(max_wait, max(0.0, (following - self.clock()).total_seconds()))
            self._stop.wait(wait)

    # ------------------------------------------------------------------ firing

    def tick(self, now: datetime | None = None) -> datetime | None:
        """Deliver every fire due at or before ``now`` (the clock's time if None), each once; returns the next
        fire time of any schedule (None when none will fire)."""
        with self._lock:
            moment = (now or self.clock()).astimezone(UTC)
            schedules = self._schedules()
            for arn in [a for a in self._cursors if a not in schedules]:
                del self._cursors[arn]  # deleted: a schedule made again under its name starts afresh
            following: datetime | None = None
            for arn, schedule in schedules.items():
                upcoming = self._fire_due(arn, schedule, moment)
                if upcoming is not None and (following is None or upcoming < following):
                    following = upcoming
            return following

    def redeliver(self, fire: Fire) -> Fire:
        """Deliver ``fire`` again, as Scheduler's at-least-once delivery sometimes does."""
        with self._lock:
            return self._deliver(fire.schedule_arn, fire.function, fire.scheduled_time, _raw_input(fire.event))

    def _schedules(self) -> dict[str, Any]:
        from moto.scheduler.models import scheduler_backends

        backend = scheduler_backends[self.account_id][self.region]
        found: dict[str, Any] = {}
        for group in list(backend.schedule_groups.values()):
            for schedule in list(group.schedules.values()):
                found[schedule.arn] = schedule
        return found

    def _fire_due(self, arn: str, schedule: Any, now: datetime) -> datetime | None:
        cursor = self._cursors.get(arn)
        if cursor is None:
            created = datetime.fromtimestamp(float(schedule.creation_date), UTC)
            cursor = self._cursors[arn] = _Cursor(created=created, checked=created)
        signature = (str(schedule.schedule_expression), str(schedule.schedule_expression_timezone or "UTC"))
        if signature != cursor.signature:
            cursor.signature = signature
            try:
                cursor.expression = expressions.parse(*signature, now=cursor.checked)
            except ScheduleError as exc:
                LOG.warning("schedule %s has an expression Scheduler would refuse: %s", arn, exc)
                cursor.expression = None
        if cursor.expression is None:
            return None
        if str(schedule.state or "ENABLED") != "ENABLED":
            cursor.checked = max(cursor.checked, now)  # a disabled schedule does not catch up when enabled again
            return None
        target = dict(schedule.target or {})
        for _ in range(MAX_FIRES_PER_TICK):
            due = cursor.expression.next_after(cursor.checked, anchor=cursor.created)
            if due is None or due > now:
                return due
            cursor.checked = due
            self._deliver(arn, str(target.get("Arn", "")), due, str(target.get("Input") or "{}"))
        LOG.warning("schedule %s: more than %d fires due at once; the rest follow", arn, MAX_FIRES_PER_TICK)
        return now

    def _deliver(self, arn: str, function: str, due: datetime, raw_input: str) -> Fire:
        fire = Fire(arn, due, function, None)
        for attempt in range(self.max_retries + 1):
            text = (
                raw_input.replace("<aws.scheduler.scheduled-time>", iso(due))
                .replace("<aws.scheduler.schedule-arn>", arn)
                .replace("<aws.scheduler.execution-id>", str(uuid.uuid4()))
                .replace("<aws.scheduler.attempt-number>", str(attempt + 1))
            )
            try:
                fire.event = json.loads(text)
            except ValueError:
                fire.event = text
            fire.attempts = attempt + 1
            if self.iam is not None:
                call = self.iam.check(SCHEDULER_PRINCIPAL, "lambda:InvokeFunction", function)
                if not call.allowed and self.iam.enforce:
                    fire.error = f"{SCHEDULER_PRINCIPAL} may not invoke {function}"
                    break
            try:
                fire.result = self.dispatcher.invoke(function, raw=text.encode())
            except LookupError as exc:
                fire.error = str(exc)
                break
            fire.delivered_at = time.time()
            if fire.result.function_error is None:
                fire.error = None
                break
            fire.error = fire.result.payload.decode(errors="replace")
            time.sleep(RETRY_DELAY_SECONDS)
        self.fires.append(fire)
        if not fire.delivered:
            LOG.warning("schedule %s fire at %s not delivered: %s", arn, iso(due), fire.error)
            self.dead_letters.append(fire)
        return fire


def _raw_input(event: Any) -> str:
    return event if isinstance(event, str) else json.dumps(event)
