"""How times and durations are shown (SPEC §7): UTC in storage, `YYYY-MM-DD HH:mm:ss` in the
display time zone, durations as `2시간 15분 0초`."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

DISPLAY_FORMAT = "%Y-%m-%d %H:%M:%S"


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC here (SQLite hands them back naive; Docker's too)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime | None, tz: ZoneInfo) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).strftime(DISPLAY_FORMAT)


def format_duration(start: datetime | None, end: datetime | None) -> str | None:
    """`2시간 15분 0초`, `45분 3초`, `7초`; None until both ends are known."""
    if start is None or end is None:
        return None
    return format_seconds(max(0, int((as_utc(end) - as_utc(start)).total_seconds())))


def format_seconds(seconds: int) -> str:
    """A number of seconds as `format_duration` shows it."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}시간 {minutes}분 {secs}초"
    if minutes:
        return f"{minutes}분 {secs}초"
    return f"{secs}초"


def utcnow() -> datetime:
    return datetime.now(UTC)
