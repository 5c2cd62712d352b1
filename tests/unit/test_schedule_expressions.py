"""Schedule expressions as EventBridge Scheduler reads them: what is refused (and where), and when each fires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from functions.errors import ScheduleError
from functions.schedules.expressions import parse

NOW = datetime(2026, 11, 30, 8, 40, 12, tzinfo=UTC)  # a Monday


def first(expression: str, timezone: str = "UTC", after: datetime = NOW) -> datetime | None:
    return parse(expression, timezone, now=after).next_after(after, anchor=after)


def fires(expression: str, count: int, timezone: str = "UTC", after: datetime = NOW) -> list[datetime]:
    parsed = parse(expression, timezone, now=after)
    found: list[datetime] = []
    moment = after
    for _ in range(count):
        following = parsed.next_after(moment, anchor=after)
        assert following is not None
        found.append(following)
        moment = following
    return found


def test_rate_fires_every_interval_from_its_creation_to_the_second() -> None:
    start = NOW.replace(microsecond=0)
    assert fires("rate(5 minutes)", 3) == [start + timedelta(minutes=5 * k) for k in (1, 2, 3)]
    assert first("rate(1 hour)") == start + timedelta(hours=1)
    assert first("rate(2 days)") == start + timedelta(days=2)
    # AND long after its creation it still counts whole intervals from it
    parsed = parse("rate(7 minutes)")
    later = NOW + timedelta(hours=5, seconds=1)
    assert parsed.next_after(later, anchor=NOW) == NOW + timedelta(minutes=7 * 43)


def test_cron_uses_aws_fields_and_wildcards() -> None:
    # 6-field AWS cron: minutes hours day-of-month month day-of-week year; days 1 (SUN) to 7 (SAT)
    assert first("cron(0 9 * * ? *)") == datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert first("cron(0/15 * * * ? *)") == datetime(2026, 11, 30, 8, 45, tzinfo=UTC)
    assert first("cron(0 9 ? * 1 *)") == datetime(2026, 12, 6, 9, tzinfo=UTC)  # 1 is Sunday
    assert first("cron(0 9 ? * 7 *)") == datetime(2026, 12, 5, 9, tzinfo=UTC)  # 7 is Saturday
    assert first("cron(0 9 ? * SAT *)") == datetime(2026, 12, 5, 9, tzinfo=UTC)
    assert fires("cron(0 8 ? * MON-FRI *)", 2) == [datetime(2026, 12, d, 8, tzinfo=UTC) for d in (1, 2)]
    assert first("cron(0 9 L * ? *)") == datetime(2026, 11, 30, 9, tzinfo=UTC)  # last day of the month
    assert first("cron(0 9 ? * 6L *)") == datetime(2026, 12, 25, 9, tzinfo=UTC)  # last Friday
    assert first("cron(0 9 ? * L *)") == datetime(2026, 12, 5, 9, tzinfo=UTC)  # L alone: Saturday
    assert first("cron(0 9 ? * 2#1 *)") == datetime(2026, 12, 7, 9, tzinfo=UTC)  # first Monday
    assert first("cron(0 9 5W * ? *)") == datetime(2026, 12, 4, 9, tzinfo=UTC)  # 5 Dec is a Saturday
    assert first("cron(30 12 1 JAN ? 2028)") == datetime(2028, 1, 1, 12, 30, tzinfo=UTC)
    assert first("cron(0 9 ? * 1-7/2 *)") == datetime(2026, 12, 1, 9, tzinfo=UTC)  # SUN, TUE, THU, SAT


def test_cron_and_at_are_read_in_the_schedules_time_zone_across_daylight_saving() -> None:
    paris = ZoneInfo("Europe/Paris")
    winter = first("cron(0 9 * * ? *)", "Europe/Paris")
    assert winter == datetime(2026, 12, 1, 8, tzinfo=UTC)
    summer = first("cron(0 9 * * ? *)", "Europe/Paris", after=datetime(2027, 6, 1, 12, tzinfo=UTC))
    assert summer == datetime(2027, 6, 2, 7, tzinfo=UTC)
    assert winter is not None and summer is not None
    assert winter.astimezone(paris).hour == summer.astimezone(paris).hour == 9
    assert first("at(2026-12-01T10:00:00)", "America/New_York") == datetime(2026, 12, 1, 15, tzinfo=UTC)
    # AND an at() schedule fires once
    parsed = parse("at(2026-12-01T10:00:00)")
    assert parsed.next_after(datetime(2026, 12, 1, 10, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("expression", "fires"),
    [
        ("cron(0 9 1 * ? 2099)", datetime(2099, 1, 1, 9, tzinfo=UTC)),
        ("cron(0 9 L * ? 2099)", datetime(2099, 1, 31, 9, tzinfo=UTC)),
        ("cron(59 23 31 12 ? 2099)", datetime(2099, 12, 31, 23, 59, tzinfo=UTC)),
    ],
)
def test_a_cron_far_ahead_in_its_year_field_is_taken_and_fires_then(expression: str, fires: datetime) -> None:
    # decades ahead, past croniter's default 50-year search
    assert first(expression) == fires


@pytest.mark.parametrize(
    ("expression", "field", "col", "words"),
    [
        ("cron(0 9 * * * *)", "day-of-week", 14, "'?'"),
        ("cron(0 9 ? * ? *)", "day-of-week", 14, "'?'"),
        ("cron(60 9 * * ? *)", "minutes", 6, "minutes"),
        ("cron(0 24 * * ? *)", "hours", 8, "hours"),
        ("cron(0 9 32 * ? *)", "day-of-month", 10, "day-of-month"),
        ("cron(0 9 * 13 ? *)", "month", 12, "month"),
        ("cron(0 9 ? * 0 *)", "day-of-week", 14, "1 (SUN) to 7 (SAT)"),
        ("cron(0 9 ? * 2-9 *)", "day-of-week", 16, "out of range"),
        ("cron(0 9 * * ? 1969)", "year", 16, "year"),
        ("cron(0 9 * x ? *)", "month", 12, "'x'"),
        ("cron(0 9 * * $ *)", "day-of-week", 14, "'$'"),
        ("cron(0 9 * * ?)", None, 15, "6 fields"),
        ("cron(0 9 * * ? * *)", None, 18, "6 fields"),
        ("cron(0 9 * * ? *", None, 17, "')'"),
        ("rate(1 minutes)", None, 8, "singular"),
        ("rate(5 minute)", None, 8, "plural"),
        ("rate(0 minutes)", None, 6, "at least 1"),
        ("rate(30 seconds)", None, 9, "unit"),
        ("rate(five minutes)", None, 6, "whole number"),
        ("at(2026-13-01T00:00:00)", None, 4, "date"),
        ("cron(0 9 * * ? 2020)", None, 1, "never fires"),
        ("at(2020-01-01T00:00:00)", None, 1, "never fires"),
        ("hourly", None, 1, "rate(value unit)"),
    ],
)
def test_a_malformed_expression_names_its_field_and_column(
    expression: str, field: str | None, col: int, words: str
) -> None:
    with pytest.raises(ScheduleError, match="invalid schedule expression") as raised:
        parse(expression, now=NOW)
    (detail,) = raised.value.details
    assert detail["loc"] == "expression"
    assert detail["position"] == {"col": col}
    assert detail.get("field") == field
    assert words in detail["message"]


# "localtime" is a file of many machines' zoneinfo directory (this one's too), not a zone Lambda's image or tzdata has
@pytest.mark.parametrize("zone", ["Mars/Base", "", "utc+1", "../../etc/passwd", "Europe/" + "x" * 60, "localtime"])
def test_an_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(ScheduleError, match="unknown time zone") as raised:
        parse("rate(1 hour)", zone)
    assert raised.value.details == [{"loc": "timezone", "message": "not an IANA time zone name"}]


def test_known_time_zones_are_taken() -> None:
    for zone in ("UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Asia/Kolkata"):
        assert parse("rate(1 hour)", zone).timezone == zone
