"""A job's stored log over HTTP (app/joblogs.py): a chunk by offset, a live stream, a download.

- `GET /api/models/<uuid>/logs?offset=N[&jobId=J]` → JSON `{jobId, text, offset, nextOffset,
  complete}`: at most CHUNK_BYTES from byte N on (`offset` is where `text` starts: later than
  N when that output was rotated away); `complete` once the container ended and nothing is
  left after `nextOffset`.
- `GET /api/models/<uuid>/logs?follow=1[&offset=N][&jobId=J]` → `text/event-stream`: one
  event per line, `id: <byte offset just after the line>` and `data: <the line>`; a
  `Last-Event-ID` header (what EventSource sends when it reconnects) wins over `offset`, so a
  reconnect resumes exactly after the last line received. `event: end` once the job's
  container has ended and every line was sent; a `: keep-alive` comment while nothing is
  printed. A stream lasts at most LOG_FOLLOW_MAX_S (each one holds a gunicorn worker thread,
  a whole worker under sync workers), then closes without `end`: the client reconnects with
  the last id. An API process serves at most LOG_FOLLOW_STREAMS streams at once; one more is
  answered 503 (poll `?offset=` instead).
- `GET /api/models/<uuid>/logs/download[?jobId=J]` → the whole stored log, text/plain, as an
  attachment.

Lines end at LF, CR LF or a lone CR (a progress bar's redraw). A line longer than
EVENT_LINE_BYTES is sent in pieces of that size. What the job printed is hostile input: every
line and chunk is escaped through app/domain/jobtext.py (invalid UTF-8 and NUL as `\\xNN`,
a CR or LF inside an event line as `\\r` / `\\n`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator

from flask import Response
from sqlalchemy import select

from app import joblogs
from app.api import responses
from app.api.envelope import ApiError
from app.api.params import is_ascii_digits, quote
from app.appstate import AppState
from app.db.models import Job
from app.domain.jobtext import log_line, split_log_lines, storable, storable_stream
from app.domain.states import JobStatus
from app.jobfiles import JobFileError, JobPath

CHUNK_BYTES = 256 * 1024  # the most one ?offset= answer (and one read of a stream) carries
EVENT_LINE_BYTES = 64 * 1024
POLL_S = 0.5  # how often a stream looks for new output and for the container's end
DOWNLOAD_BLOCK = 256 * 1024

_slots_guard = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _stream_slots(limit: int) -> threading.BoundedSemaphore:
    with _slots_guard:
        return _slots.setdefault(limit, threading.BoundedSemaphore(limit))


def parse_offset(raw: str | None, name: str) -> int | None:
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if not is_ascii_digits(raw) or len(raw) > 18:
        why = f"{name}: must be a byte offset (an integer ≥ 0), got {quote(raw)}."
        raise ApiError(400, "INVALID_QUERY", why)
    return int(raw)


def parse_follow(raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in ("", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise ApiError(400, "INVALID_QUERY", f"follow: must be 1 or 0, got {quote(raw or '')}.")


def container_ended(rt: AppState, job_id: int) -> bool:
    """The job's container ended and its output is all stored (the node stores the rest of
    the log before it records the end), or it never had one and never will."""
    with rt.reads() as session:
        row = session.execute(
            select(Job.container_ended_dttm, Job.container_gone_dttm, Job.status_cd, Job.node)
            .where(Job.id == job_id)
        ).one_or_none()
    if row is None:
        return True
    ended_at, gone_at, status, node = row
    never_claimed = node is None and JobStatus(status).is_terminal
    return ended_at is not None or gone_at is not None or never_claimed


def _refused(exc: JobFileError) -> ApiError:
    return ApiError(409, "LOG_REFUSED", f"{exc}.")


def chunk(rt: AppState, job: Job, folder: JobPath, offset: int) -> responses.LogChunk:
    ended = container_ended(rt, job.id)  # before the read: then the read has everything
    try:
        part = joblogs.read(folder, offset, CHUNK_BYTES)
    except JobFileError as exc:
        raise _refused(exc) from None
    return {
        "jobId": job.id,
        "text": storable(part.data),
        "offset": part.offset,
        "nextOffset": part.next_offset,
        "complete": ended and part.next_offset >= part.end,
    }


def follow(rt: AppState, job_id: int, folder: JobPath, offset: int) -> Response:
    slots = _stream_slots(rt.settings.log_follow_streams)
    if not slots.acquire(blocking=False):
        raise ApiError(
            503,
            "TOO_MANY_LOG_STREAMS",
            f"This API process already serves {rt.settings.log_follow_streams} live log "
            "streams (LOG_FOLLOW_STREAMS); poll with ?offset= or try again shortly.",
        )
    stream = _Stream(_events(rt, job_id, folder, offset), slots)
    response = Response(stream, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy must pass each event on at once
    return response


class _Stream:
    """The events, holding a stream slot until the server closes the answer (also when the
    client went away before the first event: a generator never started runs no `finally`)."""

    def __init__(self, events: Generator[str, None, None], slot: threading.BoundedSemaphore):
        self._events = events
        self._slot: threading.BoundedSemaphore | None = slot

    def __iter__(self) -> Iterator[str]:
        return self._events

    def close(self) -> None:
        self._events.close()
        if self._slot is not None:
            self._slot.release()
            self._slot = None


def _events(rt: AppState, job_id: int, folder: JobPath, offset: int) -> Generator[str, None, None]:
    settings = rt.settings
    yield f"retry: 1000\n: job {job_id}\n\n"
    deadline = time.monotonic() + settings.log_follow_max_s
    quiet_since = time.monotonic()
    position, pending = offset, b""  # sent up to `position`; `pending` follows it
    while True:
        try:
            ended = container_ended(rt, job_id)
            part = joblogs.read(folder, position + len(pending), CHUNK_BYTES)
        except Exception as exc:  # the database or the file went away: the client resumes
            yield f": stopped ({type(exc).__name__}); reconnect to resume\n\n"
            return
        if part.offset > position + len(pending):  # older output was rotated away
            if pending:
                position += len(pending)
                yield _event(position, pending)
            yield f": {part.offset - position} bytes were rotated away\n\n"
            position, pending = part.offset, b""
        caught_up = part.next_offset >= part.end
        lines, pending = split_log_lines(pending + part.data, final=ended and caught_up)
        while len(pending) > EVENT_LINE_BYTES:
            lines.append(pending[:EVENT_LINE_BYTES])
            pending = pending[EVENT_LINE_BYTES:]
        for line in lines:
            position += len(line)
            yield _event(position, line)
        if lines:
            quiet_since = time.monotonic()
        if ended and caught_up and not pending:
            yield "event: end\ndata:\n\n"
            return
        now = time.monotonic()
        if now >= deadline:
            return
        if not caught_up:
            continue
        if now - quiet_since >= settings.log_follow_keepalive_s:
            quiet_since = now
            yield ": keep-alive\n\n"
        time.sleep(POLL_S)


def _event(position: int, line: bytes) -> str:
    return f"id: {position}\ndata: {log_line(line)}\n\n"


def download(folder: JobPath) -> Iterator[str]:
    """The stored log from its oldest byte kept to its end as it is now, escaped."""
    try:
        end = joblogs.end_offset(folder)
        first = joblogs.read(folder, 0, 0).offset
    except JobFileError as exc:
        raise _refused(exc) from None

    def blocks() -> Iterator[bytes]:
        position = first
        while position < end:
            part = joblogs.read(folder, position, min(DOWNLOAD_BLOCK, end - position))
            if not part.data:
                return
            yield part.data
            position = part.next_offset

    return storable_stream(blocks())
