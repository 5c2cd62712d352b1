"""EventBridge Scheduler expressions: ``rate(...)``, ``cron(...)`` (AWS's six fields) and ``at(...)``, checked the
way AWS checks them and evaluated in the schedule's time zone.

Cron fields are translated to croniter's syntax and evaluated by croniter (its ``L``, ``W``, ``#`` and year field
are AWS's). What croniter cannot say (which field, which character) is found here: each field is checked on its
own, characters first, then by croniter alone in an otherwise neutral expression, so a 422 names the field and
the column of the problem. croniter (and dateutil under it) is imported on first use, not at the API's cold start.
"""

from __future__ import annotations

import importlib.resources
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

from functions.errors import ScheduleError

MAX_YEARS_AHEAD = 200
"""How far ahead a cron schedule's next fire time is looked for (its year field reaches 2099)."""
CRON_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_ALLOWED = {
    "minutes": set("0123456789,-*/"),
    "hours": set("0123456789,-*/"),
    "day-of-month": set("0123456789,-*/?LW"),
    "month": set("0123456789,-*/ABCDEFGJLMNOPRSTUVYabcdefgjlmnoprstuvy"),
    "day-of-week": set("0123456789,-*/?L#ADEFHIMNORSTUWadefhimnorstuw"),
    "year": set("0123456789,-*/"),
}
_NEUTRAL = ("0", "0", "*", "*", "*", "*")
"""croniter's field values that accept every time: one field of a user's expression is checked inside them."""
DOW = "day-of-week"
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_RATE = re.compile(r"rate\((?P<value>[0-9]+) (?P<unit>[a-z]+)\)")
_AT = re.compile(r"at\((?P<when>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\)")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_EXPRESSION_CHARS = 256
MAX_TIMEZONE_CHARS = 50
MAX_RATE_VALUE = 1_000_000


@dataclass(frozen=True)
class Expression:
    """A checked expression; ``next_after`` gives its fire times in UTC."""

    text: str
    kind: Literal["rate", "cron", "at"]
    timezone: str
    every: timedelta | None = None
    cron: str | None = None
    """The expression in croniter's syntax (``min hour dom month dow second year``)."""
    at: datetime | None = None

    def next_after(self, after: datetime, *, anchor: datetime | None = None) -> datetime | None:
        """The first fire time strictly after ``after`` (UTC), None when there is none.

        A rate schedule fires every interval counted from ``anchor`` (its creation, to the second); cron and at
        schedules are read in the schedule's time zone.
        """
        after = after.astimezone(UTC)
        if self.every is not None:
            start = (anchor or after).astimezone(UTC).replace(microsecond=0)  # fire times are whole seconds
            if after < start:
                return start + self.every
            periods = int((after - start) / self.every) + 1
            return start + periods * self.every
        if self.at is not None:
            return self.at if self.at > after else None
        assert self.cron is not None
        from croniter import CroniterBadDateError, croniter

        start = after.astimezone(_zone(self.timezone))
        try:  # croniter gives up 50 years ahead by default; a cron's year field reaches 2099
            moment = croniter(self.cron, start, max_years_between_matches=MAX_YEARS_AHEAD).get_next(datetime)
        except CroniterBadDateError:
            return None
        return moment.astimezone(UTC)


def parse(text: str, timezone: str = "UTC", *, now: datetime | None = None) -> Expression:
    """Check ``text`` and ``timezone`` as EventBridge Scheduler does; ScheduleError (422) names what is wrong
    and where (``details[].position.col`` is 1-based in the expression). An expression that never fires
    after ``now`` is refused too."""
    check_timezone(timezone)
    if not isinstance(text, str) or not text:
        raise _error("the expression is empty: rate(...), cron(...) or at(...)", col=1)
    if len(text) > MAX_EXPRESSION_CHARS:
        raise _error(f"the expression is over {MAX_EXPRESSION_CHARS} characters", col=MAX_EXPRESSION_CHARS + 1)
    if text.startswith("rate("):
        expression = _rate(text, timezone)
    elif text.startswith("cron("):
        expression = _cron(text, timezone)
    elif text.startswith("at("):
        expression = _at(text, timezone)
    else:
        raise _error("an expression is rate(value unit), cron(six fields) or at(yyyy-mm-ddThh:mm:ss)", col=1)
    moment = now or datetime.now(UTC)
    if expression.kind != "rate" and expression.next_after(moment) is None:
        raise _error(f"{text} never fires after {moment.strftime('%Y-%m-%dT%H:%M:%SZ')}", col=1)
    return expression


def check_timezone(name: str) -> None:
    """An IANA time zone name, as ScheduleExpressionTimezone takes it (422 otherwise)."""
    if not isinstance(name, str) or not name or len(name) > MAX_TIMEZONE_CHARS or name not in _zone_names():
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Paris",
            [{"loc": "timezone", "message": "not an IANA time zone name"}],
        )


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    """The IANA names of the ``tzdata`` package the functions ship with: the same list here and in Lambda.
    (``zoneinfo.available_timezones()`` adds whatever the machine's zoneinfo directory holds, such as
    ``localtime``, which Lambda's image does not have.)"""
    names = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) | {"UTC"}


@lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def _error(message: str, *, col: int, field: str | None = None) -> ScheduleError:
    detail: dict[str, object] = {"loc": "expression", "position": {"col": col}, "message": message}
    if field is not None:
        detail["field"] = field
    where = f" ({field}, column {col})" if field else f" (column {col})"
    return ScheduleError(f"invalid schedule expression{where}: {message}", [detail])


def _rate(text: str, timezone: str) -> Expression:
    match = _RATE.fullmatch(text)
    if match is None:
        col = len("rate(") + 1
        raise _error("rate(value unit): a whole number, one space, then minute(s), hour(s) or day(s)", col=col)
    value, unit = int(match["value"]), match["unit"]
    unit_col = match.start("unit") + 1
    singular = unit.rstrip("s") if unit.endswith("s") else unit
    if singular not in _UNITS:
        raise _error(f"unknown unit {unit!r}: minute(s), hour(s) or day(s)", col=unit_col)
    if value < 1:
        raise _error("the rate must be at least 1 (EventBridge Scheduler's shortest is 1 minute)", col=6)
    if value > MAX_RATE_VALUE:
        raise _error(f"the rate must be at most {MAX_RATE_VALUE}", col=6)
    if (value == 1) != (unit == singular):
        wanted = singular if value == 1 else singular + "s"
        raise _error(f"write rate({value} {wanted}): 1 takes the singular unit, others the plural", col=unit_col)
    return Expression(text, "rate", timezone, every=timedelta(seconds=value * _UNITS[singular]))


def _at(text: str, timezone: str) -> Expression:
    match = _AT.fullmatch(text)
    if match is None:
        raise _error("at(yyyy-mm-ddThh:mm:ss): a local date and time in the schedule's time zone", col=4)
    try:
        local = datetime.strptime(match["when"], "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise _error(f"not a date and time: {exc}", col=4) from exc
    return Expression(text, "at", timezone, at=local.replace(tzinfo=_zone(timezone)).astimezone(UTC))


def _cron(text: str, timezone: str) -> Expression:
    if not text.endswith(")"):
        raise _error("cron(...) must end with ')'", col=len(text) + 1)
    inner_start = len("cron(")
    inner = text[inner_start:-1]
    fields = [(m.group(), inner_start + m.start() + 1) for m in re.finditer(r"\S+", inner)]
    if len(fields) != len(CRON_FIELDS):
        col = fields[len(CRON_FIELDS)][1] if len(fields) > len(CRON_FIELDS) else len(text)
        raise _error(
            f"cron takes 6 fields ({' '.join(CRON_FIELDS)}), found {len(fields)}",
            col=col,
        )
    for (value, col), name in zip(fields, CRON_FIELDS, strict=True):
        bad = next((i for i, ch in enumerate(value) if ch not in _ALLOWED[name]), None)
        if bad is not None:
            raise _error(f"{value[bad]!r} is not allowed in the {name} field", col=col + bad, field=name)
    dom, (dow, dow_col) = fields[2][0], fields[4]
    if (dom == "?") == (dow == "?"):
        message = (
            "one of day-of-month and day-of-week must be '?', and only one"
            if dom == "?"
            else "day-of-month and day-of-week cannot both be given: write '?' in one of them"
        )
        raise _error(message, col=dow_col, field="day-of-week")
    translated = [value for value, _ in fields]
    translated[2] = "*" if dom == "?" else dom
    translated[4] = "*" if dow == "?" else _day_of_week(dow, dow_col)
    for index, (value, col) in enumerate(fields):
        one = list(_NEUTRAL)
        one[index] = translated[index]
        if not _valid(one):
            raise _error(f"{value!r} is not a valid {CRON_FIELDS[index]} value", col=col, field=CRON_FIELDS[index])
    if not _valid(translated):
        raise _error("the fields do not combine into a valid expression", col=inner_start + 1)
    minute, hour, dom_c, month, dow_c, year = translated
    return Expression(text, "cron", timezone, cron=f"{minute} {hour} {dom_c} {month} {dow_c} 0 {year}")


def _valid(fields: list[str] | tuple[str, ...]) -> bool:
    from croniter import CroniterError, croniter

    minute, hour, dom, month, dow, year = fields
    try:
        croniter(f"{minute} {hour} {dom} {month} {dow} 0 {year}", datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, KeyError, IndexError):
        return False
    return True


def _day_of_week(value: str, col: int) -> str:
    """AWS numbers days 1 (SUN) to 7 (SAT), croniter 0 to 6; ``5L`` (last Thursday) is croniter's ``L4`` and a
    lone ``L`` is Saturday. Names pass as they are."""

    def day(token: str, offset: int) -> str:
        if token.isdigit():
            number = int(token)
            if not 1 <= number <= 7:
                raise _error(f"day {number} is out of range: days are 1 (SUN) to 7 (SAT)", col=col + offset, field=DOW)
            return str(number - 1)
        if token.upper() in _DAYS or token in ("*", ""):
            return token
        raise _error(f"{token!r} is not a day: 1-7 or SUN-SAT", col=col + offset, field=DOW)

    parts: list[str] = []
    offset = 0
    for token in value.split(","):
        if token == "L":
            parts.append("6")
        elif token.endswith("L") and "#" not in token:
            parts.append("L" + day(token[:-1], offset))
        elif "#" in token:
            first, _, nth = token.partition("#")
            parts.append(f"{day(first, offset)}#{nth}")
        else:
            span, slash, step = token.partition("/")
            low, dash, high = span.partition("-")
            converted = day(low, offset) + (dash + day(high, offset + len(low) + 1) if dash else "")
            parts.append(converted + slash + step)
        offset += len(token) + 1
    return ",".join(parts)
