"""A job's stored log (app/joblogs.py): offsets that never change meaning, a size cap kept by
rotation (the newest output stays), and the gate's refusals for what a job may plant there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app import jobfiles, joblogs
from app.jobfiles import JobFileError, JobPath, Limits, Reason

CAP = 400  # bytes: segments of 100


def _folder(tmp_path: Path, cap: int = CAP) -> JobPath:
    return joblogs.log_dir(JobPath(tmp_path, (), Limits(job_log=cap)), "model-uuid", 7)


def _lines(count: int, start: int = 0) -> list[bytes]:
    return [f"line {i:04d}\n".encode() for i in range(start, start + count)]  # 10 bytes each


def test_what_is_appended_reads_back_from_any_offset(tmp_path: Path) -> None:
    folder = _folder(tmp_path, cap=1 << 20)
    written = b""
    for line in _lines(30):
        joblogs.append(folder, line)
        written += line
    assert joblogs.end_offset(folder) == len(written) == 300
    assert joblogs.read(folder, 0, 10_000).data == written
    part = joblogs.read(folder, 95, 20)
    assert (part.offset, part.data, part.next_offset) == (95, written[95:115], 115)
    assert joblogs.read(folder, 300, 10).data == b""


def test_the_cap_keeps_the_newest_output_and_offsets_keep_their_meaning(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    written = b""
    for line in _lines(100):  # 1000 bytes into a 400-byte cap
        joblogs.append(folder, line)
        written += line
    stored = joblogs.segments(folder)
    assert len(stored) == joblogs.SEGMENTS_KEPT
    kept = sum(os.path.getsize(s.path.host_path) for s in stored)
    assert 3 * CAP // 4 <= kept <= CAP
    assert joblogs.end_offset(folder) == 1000  # the stream's length, not what is kept
    everything = joblogs.read(folder, 0, 10_000)  # asked from 0: starts at the oldest kept
    assert everything.offset == 1000 - kept
    assert everything.data == written[everything.offset :]  # the newest bytes, in order
    later = joblogs.read(folder, 905, 30)
    assert later.data == written[905:935]  # the same offset means the same byte
    assert joblogs.tail(folder, 2) == "line 0098\nline 0099"


def test_one_append_larger_than_the_cap_keeps_its_end(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    blob = bytes(range(256)) * 8  # 2048 bytes
    assert joblogs.append(folder, blob) == 2048
    chunk = joblogs.read(folder, 0, 10_000)
    assert chunk.data == blob[chunk.offset :] and chunk.offset >= 2048 - CAP


def test_the_tail_comes_from_the_stored_log_without_a_cut_traceback(tmp_path: Path) -> None:
    folder = _folder(tmp_path, cap=1 << 20)
    frames = "".join(f'  File "t.py", line {i}, in f\n    f()\n' for i in range(30))
    joblogs.append(folder, b"epoch 1\nTraceback (most recent call last):\n")
    joblogs.append(folder, frames.encode() + b"ValueError: boom\n")
    tail = joblogs.tail(folder, 10).splitlines()
    assert tail[0] == "Traceback (most recent call last):" and tail[-1] == "ValueError: boom"


def test_nothing_stored_reads_as_empty(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert joblogs.segments(folder) == []
    assert joblogs.end_offset(folder) == 0
    assert joblogs.read(folder, 5, 10).data == b""
    assert joblogs.tail(folder, 50) == ""


def test_what_a_job_plants_in_its_log_folder_is_refused_or_ignored(tmp_path: Path) -> None:
    folder = _folder(tmp_path, cap=1 << 20)
    joblogs.append(folder, b"real\n")
    host = folder.host_path
    (host / "notes.txt").write_text("not a segment")
    (tmp_path / "secret").write_text("host secret\n")
    os.symlink(tmp_path / "secret", host / "0000000000000100.log")  # a link as a segment
    os.mkfifo(host / "0000000000000200.log")
    # Links and FIFOs are not segments (not regular files); the junk name is not either.
    assert [s.start for s in joblogs.segments(folder)] == [0]
    assert joblogs.read(folder, 0, 100).data == b"real\n"
    # The writer never follows a link put where its segment is.
    segment = host / "0000000000000000.log"
    segment.unlink()
    os.symlink(tmp_path / "secret", segment)
    with pytest.raises(JobFileError) as refused:
        jobfiles.open_append(folder / "0000000000000000.log")
    assert refused.value.reason is Reason.LINK
    assert (tmp_path / "secret").read_text() == "host secret\n"


def test_a_linked_log_folder_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0000000000000000.log").write_text("planted\n")
    folder.host_path.parent.mkdir(parents=True)
    os.symlink(elsewhere, folder.host_path)
    with pytest.raises(JobFileError):
        joblogs.read(folder, 0, 100)
    with pytest.raises(JobFileError):
        joblogs.append(folder, b"x\n")
    assert (elsewhere / "0000000000000000.log").read_text() == "planted\n"
