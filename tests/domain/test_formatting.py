from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from app.domain.checkpoints import checkpoint_epochs, epoch_has_checkpoint, expected_val_rows
from app.domain.timefmt import format_duration, format_time

START = datetime(2026, 4, 5, 1, 30, tzinfo=UTC)


def test_duration_styles() -> None:
    assert format_duration(START, START + timedelta(hours=2, minutes=15)) == "2시간 15분 0초"
    assert format_duration(START, START + timedelta(minutes=45, seconds=3)) == "45분 3초"
    assert format_duration(START, START + timedelta(seconds=7)) == "7초"
    assert format_duration(START, None) is None


def test_time_shown_in_display_zone() -> None:
    assert format_time(START, ZoneInfo("Asia/Seoul")) == "2026-04-05 10:30:00"
    assert format_time(START.replace(tzinfo=None), ZoneInfo("UTC")) == "2026-04-05 01:30:00"
    assert format_time(None, ZoneInfo("UTC")) is None


def test_checkpoints_every_interval_and_the_last() -> None:
    assert checkpoint_epochs(10, 3, 10) == [3, 6, 9, 10]
    assert checkpoint_epochs(10, 3, 7) == [3, 6, 7]
    assert checkpoint_epochs(10, 3, None) == []
    assert not epoch_has_checkpoint(11, 10, 3, 10)
    assert expected_val_rows(10, 3) == 3
