"""Every time format on the wire, pinned byte for byte: clients parse these strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from loraforge import timestamps

WHEN = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_iso_seconds_is_the_seed_apis_format_in_utc() -> None:
    assert timestamps.iso_seconds(WHEN) == "2025-01-02T03:04:05Z"
    assert timestamps.iso_seconds(WHEN.astimezone(timezone(timedelta(hours=2)))) == "2025-01-02T03:04:05Z"
    assert timestamps.iso_seconds(timestamps.from_unix(0.75)) == "1970-01-01T00:00:00Z"


def test_iso_precise_keeps_the_fraction_only_when_there_is_one() -> None:
    assert timestamps.iso_precise(WHEN) == "2025-01-02T03:04:05.678901Z"
    assert timestamps.iso_precise(WHEN.replace(microsecond=0)) == "2025-01-02T03:04:05Z"
    assert timestamps.iso_precise(timestamps.from_unix(1.5)) == "1970-01-01T00:00:01.500000Z"


def test_cli_time_and_the_clock() -> None:
    assert timestamps.cli_time(WHEN) == "2025-01-02 03:04:05Z"
    now = timestamps.utcnow()
    assert now.utcoffset() == timedelta(0) and abs((datetime.now(UTC) - now).total_seconds()) < 5
