"""Live metrics: while a TRAIN job runs, the new complete rows of train.csv / val.csv reach the
tables, so curves move during training. The completion ingest later replaces them with exactly
the final files.

Each worker process keeps a cursor per (model, job, split): the file's identity and size and
how far it has read. A call with nothing new costs two opens (through the gate) and fstat()
calls, and no query. Appends are read from the cursor on; a file replaced by a rename (a
resume rewrites train.csv) or a cursor that does not match the database (another process
wrote, a restart deleted rows) makes the split sync from the start: delete and rewrite it from
the file. Writes lock the model row, like every other writer of a model, and stop once the job
is no longer the model's running attempt. Only complete lines are read: a torn last line waits
for the next call.

The files are the job's: opened through app.jobfiles (no link, FIFO or folder is read), at
most READ_BYTES per call (the rest waits for the next call).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import jobfiles
from app.db.models import Job
from app.db.session import transaction
from app.domain.states import JOB_ACTIVE, JobStatus
from app.jobfiles import FileKind, JobFileError, JobPath
from app.metrics import source, store
from app.metrics.csvfile import MAX_LINE_BYTES, Header, Row, parse_header, parse_rows
from app.metrics.errors import MetricsError
from app.metrics.ingest import TRAIN_FILES
from app.metrics.source import Source
from app.metrics.summary import summarize
from app.services.status_writes import lock_model_by_id

log = logging.getLogger(__name__)

_MAX_CURSORS = 1024  # past this, forget them all: each just syncs from the start once more
READ_BYTES = 16 << 20  # read per call and file at most; a longer backlog takes more calls
_UNREAD = -1  # the size in a cursor's identity when the last call left bytes unread


@dataclass
class _Cursor:
    identity: tuple[int, int, int, int]  # (device, inode, size, mtime_ns) when last read
    offset: int  # bytes consumed: the header and every complete row line so far
    line: int  # number of the next line to read
    header: Header
    generation: int  # the series generation our last write made
    hasher: Any  # SHA-256 of the bytes consumed (app.metrics.source)
    stuck_at: int | None = None  # the line of a bad row the live curve stops before


_cursors: dict[tuple[int, int, str], _Cursor] = {}
_bad_headers: dict[JobPath, str] = {}  # also files the gate refused: warned once each
_guard = threading.Lock()


def ingest_live(
    factory: sessionmaker[Session], model_id: int, job_id: int, train_dir: JobPath | Path
) -> int:
    """Append the new complete rows of the running job's CSVs; returns rows added.

    Never raises for a file being written, a bad row or a file the gate refuses (the
    completion ingest reports those); database errors do propagate."""
    added = 0
    folder = jobfiles.beneath(train_dir)
    for split, name in TRAIN_FILES:
        added += _sync(factory, model_id, job_id, split, folder / name, name)
    return added


def forget(job_id: int) -> None:
    """Drop the cursors of a job (tests, or a worker that knows the job ended)."""
    with _guard:
        for key in [k for k in _cursors if k[1] == job_id]:
            del _cursors[key]


def _sync(
    factory: sessionmaker[Session],
    model_id: int,
    job_id: int,
    split: str,
    path: JobPath,
    file: str,
    retried: bool = False,
) -> int:
    key = (model_id, job_id, split)
    try:
        with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
            info = os.fstat(handle.fileno())
            identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            with _guard:
                cursor = _cursors.get(key)
            if cursor is not None and cursor.identity == identity:
                return 0  # nothing changed since the last read
            if cursor is not None and (
                cursor.identity[:2] != identity[:2] or info.st_size < cursor.offset
            ):
                cursor = None  # replaced (a resume rewrites the file) or truncated: start over
            batch = _read(handle, path, file, cursor)
    except JobFileError as exc:
        if exc.reason is not jobfiles.Reason.MISSING and _bad_headers.get(path) != exc.why:
            _bad_headers[path] = exc.why  # once per file and reason, not every call
            log.warning("live metrics of job %s: %s", job_id, exc)
        return 0
    except OSError as exc:
        log.warning("live metrics %s of job %s: %s", file, job_id, exc)
        return 0
    if batch is None:
        return 0  # no complete header yet
    header, rows, consumed, next_line, error, more = batch
    if more:  # bytes left unread: the next call reads on, even if the file does not change
        identity = (*identity[:2], _UNREAD, _UNREAD)
    read_so_far = None if cursor is None else Source(cursor.offset, cursor.line, "")
    loaded, hasher = source.of_bytes(
        consumed, None if cursor is None else cursor.hasher, read_so_far
    )
    assert loaded.lines == next_line
    if error is not None and (cursor is None or cursor.stuck_at != error.line):
        # Once per bad row: the live curve stops before it; the completion ingest reports it.
        log.warning("live metrics of job %s: %s", job_id, error)
    stuck_at = error.line if error is not None else None
    if cursor is not None and not rows:  # blank lines, a torn line or a bad row: no write
        _remember(
            key,
            _Cursor(identity, loaded.bytes, next_line, header, cursor.generation, hasher, stuck_at),
        )
        return 0
    try:
        with transaction(factory) as session:
            generation = _write(session, model_id, job_id, split, header, rows, cursor, loaded)
    except IntegrityError as exc:  # a row the table already has: sync from the start next time
        log.warning("live metrics %s of job %s: %s", file, job_id, exc.orig)
        _drop(key)
        return 0
    if generation is None:  # the job is no longer the running attempt
        _drop(key)
        return 0
    if generation < 0:  # the table moved under the cursor: read the whole file again, once
        _drop(key)
        return 0 if retried else _sync(factory, model_id, job_id, split, path, file, True)
    _remember(key, _Cursor(identity, loaded.bytes, next_line, header, generation, hasher, stuck_at))
    return len(rows)


def _read(
    handle: BinaryIO, path: JobPath, file: str, cursor: _Cursor | None
) -> tuple[Header, list[Row], bytes, int, MetricsError | None, bool] | None:
    """(header, rows, the bytes consumed from the start or the cursor, next line number,
    the error that stopped the rows, whether complete lines were left unread) of the
    complete lines; None without a valid header."""
    if cursor is None:
        header_line = handle.readline(MAX_LINE_BYTES + 1)
        try:
            if len(header_line) > MAX_LINE_BYTES:
                raise MetricsError(file, 1, f"the line is longer than {MAX_LINE_BYTES} bytes")
            header = parse_header(header_line, file)
        except MetricsError as exc:
            if header_line.endswith(b"\n") and _bad_headers.get(path) != exc.why:
                _bad_headers[path] = exc.why  # once per file and error, not every call
                log.warning("live metrics: %s", exc)
            return None
        if not header.complete:
            return None
        first_line, before = 2, header_line
    else:
        header, first_line, before = cursor.header, cursor.line, b""
        handle.seek(cursor.offset)
    data = handle.read(READ_BYTES)
    more = len(data) == READ_BYTES and b"\n" in data  # else: all read, or one huge line
    data = data[: data.rfind(b"\n") + 1]  # a torn last line waits for the next call
    lines = data.split(b"\n")[:-1]
    rows: list[Row] = []
    error = None
    try:
        for row in parse_rows((line + b"\n" for line in lines), header, first_line):
            rows.append(row)
    except MetricsError as exc:  # keep the rows before the bad one
        error = exc
        lines = lines[: rows[-1].line - first_line + 1] if rows else []
    consumed = before + data[: sum(len(line) + 1 for line in lines)]
    return header, rows, consumed, first_line + len(lines), error, more and error is None


def _write(
    session: Session,
    model_id: int,
    job_id: int,
    split: str,
    header: Header,
    rows: list[Row],
    cursor: _Cursor | None,
    loaded: Source,
) -> int | None:
    """Write under the model lock; the new series generation, None when the job is not the
    running attempt, -1 when the cursor no longer matches the table."""
    model = lock_model_by_id(session, model_id)
    job = session.get(Job, job_id)
    if model is None or job is None or model.current_attempt_id != job_id:
        return None
    if JobStatus(job.status_cd) not in JOB_ACTIVE:
        return None
    names = header.metric_names
    if cursor is None:  # sync from the start: the split becomes the file's complete rows
        store.delete_rows(session, split, model_id, job_id)
        written = store.write_rows(session, split, header, rows, model_id, job_id)
        series = store.write_series(session, split, model_id, job_id, header, written, loaded)
        series.summary = {"generation": series.generation, "metrics": summarize(names, rows)}
        session.flush()
        return series.generation
    found = store.find_series(session, model_id, split)
    if found is None or found.job_id != job_id or found.generation != cursor.generation:
        return -1
    series = found
    written = store.write_rows(session, split, header, rows, model_id, job_id)
    cached = series.summary
    merged = None
    if cached and cached.get("generation") == series.generation:
        merged = {
            "generation": series.generation + 1,
            "metrics": summarize(names, rows, base=cached["metrics"]),
        }
    store.grow_series(session, series, written, merged, loaded)
    return series.generation


def _remember(key: tuple[int, int, str], cursor: _Cursor) -> None:
    with _guard:
        if len(_cursors) >= _MAX_CURSORS:
            _cursors.clear()
            _bad_headers.clear()
        _cursors[key] = cursor


def _drop(key: tuple[int, int, str]) -> None:
    with _guard:
        _cursors.pop(key, None)
