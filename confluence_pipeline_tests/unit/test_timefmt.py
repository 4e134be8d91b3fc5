"""Unit tests for timestamp normalisation and CQL date literals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from confluence_pipeline.domain.timefmt import cql_datetime, to_utc_iso


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:02:03.000+02:00", "2024-05-01T08:02:03.000Z"),  # DC local offset
        ("2024-05-01T10:02:03+02:00", "2024-05-01T08:02:03.000Z"),  # no millis
        ("2024-05-01T10:02:03.123Z", "2024-05-01T10:02:03.123Z"),  # Cloud
        ("2024-05-01T10:02:03Z", "2024-05-01T10:02:03.000Z"),
        ("2024-05-01T10:02:03.5Z", "2024-05-01T10:02:03.500Z"),
        ("2024-05-01T10:02:03.999999Z", "2024-05-01T10:02:03.999Z"),  # truncated, never rounded up
        ("2024-05-01T10:02:03.000-05:30", "2024-05-01T15:32:03.000Z"),
        ("2024-05-01T01:00:00.000+02:00", "2024-04-30T23:00:00.000Z"),  # crosses midnight backwards
        ("2024-12-31T23:30:00.000-01:00", "2025-01-01T00:30:00.000Z"),  # crosses the year
        ("2024-05-01T10:02:03+0200", "2024-05-01T08:02:03.000Z"),  # compact offset
        ("2024-05-01T10:02:03.000+00:00", "2024-05-01T10:02:03.000Z"),
        ("  2024-05-01T10:02:03Z ", "2024-05-01T10:02:03.000Z"),
        ("0999-01-01T00:00:00Z", "0999-01-01T00:00:00.000Z"),  # year stays four digits
    ],
)
def test_to_utc_iso(value: str, expected: str) -> None:
    assert to_utc_iso(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "yesterday",
        "2024-05-01T10:02:03",  # no offset: zone would be a guess
        "2024-05-01",
        "2024-13-01T10:02:03Z",
        "2024-05-01T25:00:00Z",
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
        "1714550000000",
    ],
)
def test_to_utc_iso_rejects_naming_the_value(value: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        to_utc_iso(value)
    assert repr(value) in str(excinfo.value)


@pytest.mark.parametrize("value", [None, 1714550000, b"2024-05-01T10:02:03Z"])
def test_to_utc_iso_rejects_non_strings(value: object) -> None:
    with pytest.raises(ValueError):
        to_utc_iso(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        (datetime(2024, 5, 1, 10, 2, 59, 999999, tzinfo=UTC), UTC, "2024/05/01 10:02"),  # floors, never rounds
        (datetime(2024, 5, 1, 10, 2, tzinfo=UTC), ZoneInfo("Europe/Zurich"), "2024/05/01 12:02"),  # CEST
        (datetime(2024, 1, 1, 10, 2, tzinfo=UTC), ZoneInfo("Europe/Zurich"), "2024/01/01 11:02"),  # CET
        (datetime(2024, 5, 1, 0, 10, tzinfo=UTC), ZoneInfo("America/New_York"), "2024/04/30 20:10"),
        (datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))), UTC, "2024/05/01 08:00"),
        (datetime(2024, 5, 1, 10, 0, tzinfo=UTC), timezone(timedelta(hours=-5, minutes=-30)), "2024/05/01 04:30"),
        (datetime(2024, 5, 1, 10, 0, tzinfo=UTC), ZoneInfo("Asia/Kolkata"), "2024/05/01 15:30"),
    ],
)
def test_cql_datetime(moment: datetime, tz: ZoneInfo | timezone, expected: str) -> None:
    assert cql_datetime(moment, tz) == expected


def test_cql_datetime_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        cql_datetime(datetime(2024, 5, 1, 10, 0), UTC)
