"""A job's log as the platform cuts and escapes it (app/domain/jobtext.py): the stored tail
never starts inside a traceback, event lines stay one line, downloads decode split characters."""

from __future__ import annotations

from app.domain.jobtext import (
    TRACEBACK_REACH,
    log_line,
    log_tail,
    split_log_lines,
    storable_stream,
)


def _traceback(frames: int) -> list[str]:
    lines = ["Traceback (most recent call last):"]
    for i in range(frames):
        lines += [f'  File "/app/train.py", line {i + 1}, in step_{i}', f"    step_{i + 1}()"]
    return [*lines, "RuntimeError: CUDA error: out of memory"]


def test_a_tail_that_would_start_inside_a_traceback_starts_at_its_first_line() -> None:
    log = ["epoch 1 loss 0.3", "epoch 2 loss 0.2", *_traceback(5)]
    tail = log_tail("\n".join(log), 4).splitlines()
    assert tail[0] == "Traceback (most recent call last):"
    assert tail[-1] == "RuntimeError: CUDA error: out of memory"
    assert tail == _traceback(5)  # 12 lines: within TRACEBACK_REACH, so whole


def test_a_long_traceback_keeps_its_first_line_and_says_what_was_left_out() -> None:
    frames = _traceback(40)  # 82 lines
    tail = log_tail("\n".join(["start", *frames]), 10).splitlines()
    assert tail[0] == "Traceback (most recent call last):"
    assert tail[1] == f"  … ({len(frames) - 10 - 1} lines of this traceback left out) …"
    assert tail[2:] == frames[-10:]
    assert len(frames) - 10 > TRACEBACK_REACH


def test_a_tail_outside_a_traceback_is_just_the_last_whole_lines() -> None:
    log = [f"epoch {i}" for i in range(100)]
    assert log_tail("\n".join(log) + "\n", 3).splitlines() == ["epoch 97", "epoch 98", "epoch 99"]
    assert log_tail("a\nb", 50) == "a\nb"
    assert log_tail("a\nb", 0) == ""
    # Indented output that is not in a traceback is left as it is.
    assert log_tail("header\n  a\n  b\n  c", 2) == "  b\n  c"


def test_event_lines_never_hold_a_line_end_nul_or_invalid_utf8() -> None:
    assert log_line(b"loss 0.1\n") == "loss 0.1"
    assert log_line(b"crlf\r\n") == "crlf"
    assert log_line(b" 45%|####  \r") == " 45%|####  "
    assert log_line(b"a\x00b\xff") == "a\\x00b\\xff"
    assert log_line(b"inner\rcarriage") == "inner\\rcarriage"
    assert "\n" not in log_line(b"x\ny") and "\r" not in log_line(b"x\ry")


def test_lines_end_at_lf_crlf_or_a_lone_cr_and_a_final_cr_waits_for_its_lf() -> None:
    assert split_log_lines(b"a\nb\r\nc\rd", final=False) == ([b"a\n", b"b\r\n", b"c\r"], b"d")
    assert split_log_lines(b"a\r", final=False) == ([], b"a\r")  # maybe the start of CR LF
    assert split_log_lines(b"a\r", final=True) == ([b"a\r"], b"")
    assert split_log_lines(b"no end yet", final=True) == ([b"no end yet"], b"")
    lines, rest = split_log_lines(b"x\n" * 3 + b"part", final=False)
    assert b"".join(lines) + rest == b"x\n" * 3 + b"part"


def test_a_download_decodes_a_character_split_between_two_blocks() -> None:
    data = "로그 ✓\n".encode()
    halves = [data[:2], data[2:], b"\x00\xfe"]
    assert "".join(storable_stream(halves)) == "로그 ✓\n\\x00\\xfe"
