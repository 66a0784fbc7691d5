"""Completion-time ingest: a job's CSVs become exactly its rows, in the caller's transaction.

Per file: delete the rows it replaces, then COPY — the fast path first (fastcopy), the
careful one (csvfile) from where the file needs it or when COPY refused a row. When the rows
the split has were loaded (by this job's live ingest) from bytes the file still starts with,
they are kept and only the rest is loaded (source.py). All of it runs inside savepoints of
the caller's transaction, so an error leaves the tables as they were, and a crash before the
caller commits leaves nothing at all: the old rows stay, no new row is seen.

The files are the job's (hostile input): every open goes through app.jobfiles, and a file it
refuses (a link, a FIFO, a folder, too large) is a MetricsError naming it.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import jobfiles
from app.db.models import Job, Model
from app.jobfiles import FileKind, JobFileError, JobPath, LineTooLong
from app.metrics import fastcopy, source, store
from app.metrics.csvfile import (
    MAX_LINE_BYTES,
    Header,
    Row,
    bounded_lines,
    labels,
    parse_rows,
    read_header,
    refused,
)
from app.metrics.errors import MetricsError
from app.metrics.summary import best_epoch

TRAIN_FILES = (("train", "train.csv"), ("val", "val.csv"))
# Under the EVAL job's output folder (trainer/README.md).
TEST_FILE = PurePosixPath("test") / "test.csv"
_COPY_LINE = re.compile(r"\bline (\d+)")


def ingest_train_outputs(
    session: Session, model: Model, job: Job, train_dir: JobPath | Path
) -> None:
    """Replace the model's train and val rows with train.csv / val.csv; set best_epoch.

    The caller holds the model row lock. Raises MetricsError with nothing changed."""
    folder = jobfiles.beneath(train_dir)
    with session.begin_nested():
        headers = {
            split: load_file(session, split, folder / name, name, model.id, job.id)
            for split, name in TRAIN_FILES
        }
        best = choose_best_epoch(session, model, job, headers["val"])
    model.best_epoch = best
    model.step1_metric_save_yn = True


def keep_train_outputs(
    session: Session, model: Model, job: Job, train_dir: JobPath | Path
) -> list[str]:
    """What a training that did not succeed leaves: each of train.csv and val.csv that is
    there and sound replaces its split's rows on its own, so a run stopped before its first
    validation (val.csv a bare header) still keeps its train rows. Returns the splits kept."""
    folder = jobfiles.beneath(train_dir)
    kept = []
    for split, name in TRAIN_FILES:
        try:
            with session.begin_nested():
                header = load_file(session, split, folder / name, name, model.id, job.id)
                if split == "val":
                    model.best_epoch = choose_best_epoch(session, model, job, header)
        except MetricsError:
            continue  # nothing of this split changed; the verdict says what went wrong
        kept.append(split)
    if kept:
        model.step1_metric_save_yn = True
    return kept


def ingest_eval_outputs(
    session: Session, model: Model, job: Job, eval_dir: JobPath | Path
) -> None:
    """Replace this EVAL job's test rows with test/test.csv."""
    folder = jobfiles.beneath(eval_dir)
    with session.begin_nested():
        load_file(session, "test", folder / TEST_FILE, TEST_FILE.as_posix(), model.id, job.id)
    model.step2_metric_save_yn = True


def load_file(
    session: Session, split: str, path: JobPath, file: str, model_id: int, job_id: int
) -> Header:
    """Make the split's rows (the test rows of `job_id`) exactly the file's rows."""
    try:
        return _load_file(session, split, path, file, model_id, job_id)
    except JobFileError as exc:  # e.g. swapped for a link between two opens
        raise refused(exc) from None
    except LineTooLong as exc:  # from the fingerprint (source.of_file)
        why = f"the line is longer than {MAX_LINE_BYTES} bytes"
        raise MetricsError(file, exc.line, why) from None


def _load_file(
    session: Session, split: str, path: JobPath, file: str, model_id: int, job_id: int
) -> Header:
    header = read_header(path, file)
    # The file is final (its job has ended): hash it on a second thread while PostgreSQL loads
    # it, rather than after (0.07 s of a million-row ingest's ~2 s).
    with ThreadPoolExecutor(1, thread_name_prefix="metrics-digest") as pool:
        fingerprint = pool.submit(source.of_file, path)
        with session.begin_nested():
            count = None
            if split != "test":
                count = _load_rest(session, split, header, path, model_id, job_id)
            if count is None:
                store.delete_rows(session, split, model_id, job_id)
                count = _load_all(session, split, header, path, model_id, job_id)
            if count == 0:
                raise MetricsError(file, 2, "no data rows (only a header)")
            store.write_series(
                session, split, model_id, job_id, header, count, fingerprint.result()
            )
    return header


def choose_best_epoch(session: Session, model: Model, job: Job, val: Header) -> int | None:
    """The val epoch with the best `params.best_metric` (default val_loss) by `best_mode`."""
    metric = str(_param(model, job, "best_metric", "val_loss"))
    mode = str(_param(model, job, "best_mode", "min")).lower()
    if mode not in ("min", "max"):
        raise MetricsError(val.file, 1, f"params.best_mode is {mode!r}, not 'min' or 'max'")
    if metric not in val.metric_names:
        columns = labels(val.metric_names) or "none"
        why = f"no column {metric!r} (params.best_metric) to pick the best epoch by; "
        why += f"metrics: {columns}"
        raise MetricsError(val.file, 1, why)
    names = val.metric_names
    rows = store.read_rows(session, "val", model.id, len(names))
    return best_epoch(rows, names.index(metric), mode)


@dataclass(frozen=True)
class _Refused:
    line: int | None  # the file line COPY stopped at, when its error says


def _load_all(
    session: Session, split: str, header: Header, path: JobPath, model_id: int, job_id: int
) -> int:
    """Load every data row: fast path first, the careful one from where it stopped."""
    fast = _copy_fast(session, split, header, path, model_id, job_id)
    if isinstance(fast, _Refused):
        _recheck(path, header, fast.line)  # most likely a real error: name it
        fast = fastcopy.FastCopy(0, header.data_offset, 2)  # else: all the careful way
    count = fast.rows
    if fast.rest_offset is not None:
        count += _copy_careful(session, split, header, path, fast, model_id, job_id)
    return count


def _load_rest(
    session: Session, split: str, header: Header, path: JobPath, model_id: int, job_id: int
) -> int | None:
    """All the split's rows, when those it has came from bytes the file still starts with
    (this job's live ingest, or an earlier ingest of it): they are kept and only what follows
    is loaded. None when the whole file must be loaded instead."""
    series = store.find_series(session, model_id, split)
    prefix = store.series_source(series) if series is not None else None
    if (
        series is None
        or prefix is None
        or series.job_id != job_id
        or tuple(series.metric_names) != header.metric_names
        or series.has_step != header.has_step
        or prefix.bytes < header.data_offset
        # A restart deletes rows without touching the series row: the count tells.
        or store.count_rows(session, split, model_id) != series.row_count
        or not source.starts_with(path, prefix)
    ):
        return None
    kept = series.row_count
    try:
        with session.begin_nested():
            fast = _copy_fast(
                session, split, header, path, model_id, job_id, prefix.bytes, prefix.lines
            )
            if isinstance(fast, _Refused):
                raise _Reload
            count = fast.rows
            if fast.rest_offset is not None:
                rows = _file_rows(path, header, fast.rest_offset, fast.rest_line)
                count += store.write_rows(session, split, header, rows, model_id, job_id)
            return kept + count
    except (_Reload, psycopg.errors.IntegrityError, IntegrityError):
        return None  # e.g. a row repeats a kept one: the full load finds and names it


class _Reload(Exception):
    """The rest could not be loaded on top of the kept rows."""


def _copy_fast(
    session: Session,
    split: str,
    header: Header,
    path: JobPath,
    model_id: int,
    job_id: int,
    start: int | None = None,
    first_line: int = 2,
) -> fastcopy.FastCopy | _Refused:
    """What the fast path loaded, or _Refused (rolled back) when COPY refused a row."""
    if store.psycopg_connection(session) is None:  # SQLite: all the careful way
        return fastcopy.FastCopy(0, header.data_offset if start is None else start, first_line)
    table = store.table_of(split).name
    try:
        with session.begin_nested():
            # Asking the session for its connection here is what emits the SAVEPOINT.
            conn = store.psycopg_connection(session)
            assert conn is not None
            return fastcopy.copy_file(
                conn, table, header, path, model_id, job_id, start, first_line
            )
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        found = _COPY_LINE.search(exc.diag.context or "")
        # COPY numbers the lines it was sent from 1; the fast path sends no blank line, so
        # its line n is file line first_line + n - 1.
        return _Refused(int(found.group(1)) + first_line - 1 if found else None)


def _copy_careful(
    session: Session,
    split: str,
    header: Header,
    path: JobPath,
    fast: fastcopy.FastCopy,
    model_id: int,
    job_id: int,
) -> int:
    """Parse and write the rows from where the fast path stopped."""
    assert fast.rest_offset is not None
    rows = _file_rows(path, header, fast.rest_offset, fast.rest_line)
    if fast.rows == 0:
        return store.write_rows(session, split, header, rows, model_id, job_id)
    try:
        with session.begin_nested():
            return store.write_rows(session, split, header, rows, model_id, job_id)
    except (psycopg.errors.IntegrityError, IntegrityError):
        # An epoch of this part repeats one the fast part loaded: the whole file names it.
        _recheck(path, header, None)
        raise


def _recheck(path: JobPath, header: Header, line: int | None) -> None:
    """Raise the careful path's error for what COPY refused. Every line before `line` passed
    COPY, and COPY accepts no more than the careful rules, so checking that one line is
    enough for a bad value or field count; a repeated epoch needs the lines before it."""
    if line is not None:
        with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
            handle.seek(header.data_offset)
            lines = bounded_lines(handle, header.file, first_line=2)
            text = next(islice(lines, line - 2, None), b"")
        for _ in parse_rows([text], header, first_line=line):
            pass
    for _ in _file_rows(path, header):
        pass


def _file_rows(path: JobPath, header: Header, offset: int | None = None, line: int = 2) -> Any:
    def rows() -> Any:
        with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
            handle.seek(header.data_offset if offset is None else offset)
            yield from parse_rows(bounded_lines(handle, header.file, line), header, first_line=line)

    return rows()


def _param(model: Model, job: Job, key: str, default: object) -> object:
    # The job's params are the model's as the run saw them; older jobs may lack a key.
    return (job.params or {}).get(key, (model.params or {}).get(key, default))


__all__ = ["Row", "choose_best_epoch", "ingest_eval_outputs", "ingest_train_outputs", "load_file"]
