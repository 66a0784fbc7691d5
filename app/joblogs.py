"""A job's log (its container's stdout and stderr, interleaved), stored in full as it runs.

Where: OUTPUT_ROOT/<model uuid>/logs/job-<job id>/, on the job storage the API reads too, so a
log outlives its container and its node. The node's log collector (workers/logcollector.py)
appends what the container printed; the API reads it back by byte offset
(GET /api/models/<uuid>/logs?offset=N, ?follow=1, /logs/download).

Offsets are positions in the whole stream the job printed, from its first byte: they never
move back and never change meaning, so a reader that resumes at offset N gets exactly what
followed byte N, whatever was rotated meanwhile.

Size cap and rotation (JOB_LOG_MAX_MB, `Limits.job_log`): the log is stored in segments of a
quarter of the cap, each named by the offset of its first byte (`0000000000000000.log`,
`0000000016777216.log`, …). When a fifth segment starts, the oldest is deleted: what is kept
is the newest output, between three quarters of the cap and the whole cap of it; what came
before is gone (a reader asking for it starts at the oldest byte kept).

The folder lies inside the model folder, which the job's container has mounted: the job can
write there (through its own mount) and so forge or spoil only its own log. Every access here
goes through app.jobfiles, the one gate: no link, FIFO or oversized file is followed or read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from app import jobfiles
from app.domain import layout
from app.domain.jobtext import log_tail, storable
from app.jobfiles import Entry, FileKind, JobFileError, JobPath, Reason

SEGMENTS_KEPT = 4
_SEGMENT = re.compile(r"^(\d{16})\.log$")
#: How much of the end of a log is read to find its last lines (the tail stored with a job).
TAIL_WINDOW = 256 * 1024


def log_dir(root: JobPath, model_uuid: object, job_id: int) -> JobPath:
    return layout.model_dir(root, model_uuid) / "logs" / f"job-{int(job_id)}"


def segment_bytes(folder: JobPath) -> int:
    return max(1, folder.limits.job_log // SEGMENTS_KEPT)


@dataclass(frozen=True)
class Segment:
    start: int  # offset of its first byte in the job's whole log
    path: JobPath


def segments(folder: JobPath) -> list[Segment]:
    """The stored segments, oldest first ([] when nothing was stored). Anything else in the
    folder (a file the job planted, a link) is not a segment and is ignored."""
    try:
        entries = jobfiles.list_dir(folder)
    except JobFileError as exc:
        if exc.reason is Reason.MISSING:
            return []
        raise
    found = [
        Segment(int(match[1]), folder / name)
        for name, kind in entries.items()
        if kind is Entry.FILE and (match := _SEGMENT.match(name))
    ]
    return sorted(found, key=lambda s: s.start)


def _segment_name(start: int) -> str:
    return f"{start:016d}.log"


# --- writing (the node's log collector) -------------------------------------------------------


def append(folder: JobPath, data: bytes) -> int:
    """Append `data` to the job's log, rotating as the module says; returns the log's end
    offset afterwards."""
    if not data:
        return end_offset(folder)
    jobfiles.make_dirs(folder)
    limit = segment_bytes(folder)
    stored = segments(folder)
    current = stored[-1] if stored else Segment(0, folder / _segment_name(0))
    while True:
        with jobfiles.open_append(current.path) as handle:
            size = os.fstat(handle.fileno()).st_size
            room = limit - size
            if room > 0 and data:
                handle.write(data[:room])
                handle.flush()
                size += min(room, len(data))
                data = data[room:]
        if not data:
            break
        start = current.start + size
        current = Segment(start, folder / _segment_name(start))
    _prune(folder)
    return current.start + size


def _prune(folder: JobPath) -> None:
    for old in segments(folder)[:-SEGMENTS_KEPT]:
        jobfiles.remove_file(old.path)


# --- reading (the API, the tail stored with a job) --------------------------------------------


@dataclass(frozen=True)
class Chunk:
    data: bytes
    offset: int  # where `data` starts: the offset asked, or later when that was rotated away
    end: int  # the log's end offset when it was read

    @property
    def next_offset(self) -> int:
        return self.offset + len(self.data)


def end_offset(folder: JobPath) -> int:
    """The offset just after the last byte stored (0 when nothing was)."""
    stored = segments(folder)
    if not stored:
        return 0
    last = stored[-1]
    try:
        with jobfiles.open_file(last.path, FileKind.JOB_LOG) as handle:
            return last.start + os.fstat(handle.fileno()).st_size
    except JobFileError as exc:
        if exc.reason is Reason.MISSING:  # rotated away between the listing and the open
            return end_offset(folder)
        raise


def read(folder: JobPath, offset: int, max_bytes: int) -> Chunk:
    """At most `max_bytes` of the log from `offset` on. An offset older than what is kept
    starts at the oldest byte kept; one past the end is answered at the end, empty."""
    for _ in range(3):  # a segment deleted between the listing and the open: list again
        try:
            return _read(folder, offset, max_bytes)
        except JobFileError as exc:
            if exc.reason is not Reason.MISSING:
                raise
    return _read(folder, offset, max_bytes)


def _read(folder: JobPath, offset: int, max_bytes: int) -> Chunk:
    stored = segments(folder)
    if not stored:
        return Chunk(b"", 0, 0)
    start = position = end = max(offset, stored[0].start)
    parts: list[bytes] = []
    followers: list[int | None] = [s.start for s in stored[1:]]
    for segment, following in zip(stored, [*followers, None], strict=True):
        if following is not None and following <= position:
            continue  # wholly before the position
        if position < segment.start:  # a gap: the job spoilt the segment before this one
            if parts:
                break
            start = position = segment.start
        with jobfiles.open_file(segment.path, FileKind.JOB_LOG) as handle:
            end = segment.start + os.fstat(handle.fileno()).st_size
            room = max_bytes - (position - start)
            if position < end and room > 0:
                handle.seek(position - segment.start)
                data = handle.read(min(room, end - position))
                parts.append(data)
                position += len(data)
        if position - start >= max_bytes:
            break
    if not parts and start > end:  # past the end: answered at the end
        start = end
    return Chunk(b"".join(parts), start, end)


def tail(folder: JobPath, lines: int) -> str:
    """The last `lines` lines of the stored log, as the job row keeps them (jobtext.log_tail:
    whole lines, never starting inside a traceback); "" when nothing was stored."""
    end = end_offset(folder)
    if end == 0 or lines <= 0:
        return ""
    chunk = read(folder, max(0, end - TAIL_WINDOW), TAIL_WINDOW)
    data = chunk.data
    if chunk.offset > 0 and b"\n" in data:  # started inside a line: drop its end
        data = data[data.index(b"\n") + 1 :]
    return log_tail(storable(data), lines)
