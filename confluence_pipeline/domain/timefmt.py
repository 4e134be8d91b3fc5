"""Time conversions at the Confluence edge: `version.when` to Unique's UTC form, datetimes to CQL date literals."""

from __future__ import annotations

from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo


def to_utc_iso(value: str) -> str:
    """Normalise a Confluence `version.when` to `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.

    DC sends local offsets (`+02:00`), Cloud sends `Z`; both must compare equal in the file diff, so
    the result is always UTC with exactly three fraction digits (extra precision is truncated).
    A value without an offset is rejected: guessing its zone would silently shift `updatedAt`.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp has no UTC offset: {value!r}")
    try:
        moment = parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range after conversion to UTC: {value!r}") from None
    # isoformat truncates to milliseconds (never rounds up into the next second) and zero-pads the year.
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def cql_datetime(moment: datetime, tz: ZoneInfo | timezone) -> str:
    """Format `moment` as a CQL date literal `yyyy/MM/dd HH:mm` in `tz` (the zone Confluence reads it in).

    CQL has minute precision; dropping the seconds floors the instant, so a `>=` query never misses
    a change made in the same minute.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"cql_datetime needs a timezone-aware datetime, got naive {moment.isoformat()}")
    local = moment.astimezone(tz)
    return f"{local.year:04d}/{local.month:02d}/{local.day:02d} {local.hour:02d}:{local.minute:02d}"
