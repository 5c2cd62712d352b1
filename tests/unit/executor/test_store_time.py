"""The store's one way of writing and reading times."""

from __future__ import annotations

import pytest

from functions.store.table import ms_between, now_iso, parse_iso, store_iso


def test_stored_times_sort_as_text_and_read_back() -> None:
    first, second = now_iso(), now_iso()
    assert first <= second
    assert first.endswith("Z") and len(first) == len("2026-01-01T00:00:00.000000Z")
    assert store_iso(first) == first


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-11-30T08:00:00.5+01:00", "2026-11-30T07:00:00.500000Z"),  # Step Functions' offsets become UTC
        ("2026-11-30T08:00:00", "2026-11-30T08:00:00.000000Z"),  # no zone: taken as UTC
        ("not a time", None),
        (None, None),
    ],
)
def test_any_iso_time_is_stored_in_utc_with_microseconds(given: str | None, stored: str | None) -> None:
    assert store_iso(given) == stored


def test_durations_are_never_negative_and_unknown_when_a_side_is_missing() -> None:
    assert ms_between("2026-11-30T08:00:00.000000Z", "2026-11-30T08:00:01.250000Z") == 1250
    assert ms_between("2026-11-30T08:00:01.000000Z", "2026-11-30T08:00:00.000000Z") == 0
    assert ms_between(None, "2026-11-30T08:00:00.000000Z") is None
    assert ms_between("garbage", "2026-11-30T08:00:00.000000Z") is None
    assert parse_iso("2026-11-30T08:00:00Z") is not None
