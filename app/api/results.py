"""/api/models/<uuid>/{logs,results,results/download}: read-only views of a model's jobs and
outputs for the dashboard's log view and its [결과 보기] / [다운로드] buttons.

Every file path is built from the model's uuid and a job id taken from the database, through
`app.domain.layout`; nothing in a request ever becomes part of a path. The files are the job's
(hostile input): opened through app.jobfiles only (no link, FIFO or folder is read), and what
they hold comes back as data; a problem names the file and line, never a host path.
"""

from __future__ import annotations

import csv
import json
import os
import re
from typing import Any

from flask import Blueprint, Response, request, send_file
from sqlalchemy.orm import Session

from app import jobfiles, joblogs
from app.api import logstream, responses
from app.api.envelope import ApiError, ok
from app.api.params import is_ascii_digits, model_or_404, parse_uuid, quote
from app.api.serialize import log_answer
from app.appstate import state
from app.db.models import Job, Model
from app.domain import layout
from app.domain.timefmt import format_time
from app.jobfiles import FileKind, JobFileError, JobPath, LineTooLong
from app.services.queries import job_to_show, latest_successful_eval

bp = Blueprint("results", __name__, url_prefix="/api/models")

#: test.csv has one data row per tested epoch; more than this is not a result file.
MAX_TEST_ROWS = 1000
#: a test.csv line longer than this is not a result row.
MAX_TEST_LINE_BYTES = 64 * 1024


def _job_id_query() -> int | None:
    raw = request.args.get("jobId", "").strip()
    if not raw:
        return None
    # ASCII digits only ('²' passes str.isdigit and breaks int()), and within a bigint.
    if not is_ascii_digits(raw) or len(raw) > 18:
        raise ApiError(
            400, "INVALID_QUERY", f"jobId: must be a job id (an integer), got {quote(raw)}."
        )
    return int(raw)


@bp.get("/<model_uuid>/logs")
def logs(model_uuid: str) -> tuple[Response, int] | Response:
    """The log tail of the model's current (or last) job, or of `?jobId=` among its jobs.

    The tail is stored when a container ends (before it is removed); a job still queued or
    running has none yet, and the answer says so in `note`. The whole log, stored as the job
    runs: `?offset=N` (a JSON chunk), `?follow=1` (a live event stream), `/logs/download`
    (app/api/logstream.py).
    """
    key = parse_uuid(model_uuid)
    wanted = _job_id_query()
    following = logstream.parse_follow(request.args.get("follow"))
    offset = logstream.parse_offset(request.args.get("offset"), "offset")
    if following:  # EventSource sends the last id it received when it reconnects
        resumed = logstream.parse_offset(request.headers.get("Last-Event-ID"), "Last-Event-ID")
        offset = resumed if resumed is not None else offset
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        job = _job_to_show_or_404(session, model, wanted)
        if job is not None and (following or offset is not None):
            folder = joblogs.log_dir(jobfiles.job_root(rt.settings), model.uuid, job.id)
            if following:
                return logstream.follow(rt, job.id, folder, offset or 0)
            return ok(logstream.chunk(rt, job, folder, offset or 0))
        if job is None:
            if following or offset is not None:
                raise ApiError(404, "JOB_NOT_FOUND", "This model has no jobs yet.")
            no_jobs: responses.LogAnswer = {
                "jobId": None,
                "logTail": None,
                "available": False,
                "note": "This model has no jobs yet.",
            }
            return ok(no_jobs)
        return ok(log_answer(model, job, rt.settings.tz))


@bp.get("/<model_uuid>/logs/download")
def logs_download(model_uuid: str) -> Response:
    """The whole stored log of the current (or last) job, or of `?jobId=`, as a text file."""
    key = parse_uuid(model_uuid)
    wanted = _job_id_query()
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        job = _job_to_show_or_404(session, model, wanted)
        if job is None:
            raise ApiError(404, "JOB_NOT_FOUND", "This model has no jobs yet.")
        folder = joblogs.log_dir(jobfiles.job_root(rt.settings), model.uuid, job.id)
        name = (
            f"{_safe_part(model.model_no)}_{_safe_part(model.model_ver)}_"
            f"{str(model.uuid)[:8]}_job_{job.id}.log"
        )
    response = Response(logstream.download(folder), mimetype="text/plain")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _job_to_show_or_404(session: Session, model: Model, wanted: int | None) -> Job | None:
    try:
        return job_to_show(session, model, wanted)
    except LookupError:
        raise ApiError(404, "JOB_NOT_FOUND", f"This model has no job {wanted}.") from None


def _latest_successful_eval_or_404(session: Session, model: Model) -> Job:
    job = latest_successful_eval(session, model)
    if job is None:
        raise ApiError(404, "NO_RESULTS", "This model has no successful test yet.")
    return job


def _eval_epoch(job: Job) -> int | None:
    value = (job.params or {}).get("epoch")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _zip_path(root: JobPath, model: Model, job: Job) -> JobPath | None:
    """The results zip when it is a regular file (None: missing; JobFileError: refused)."""
    epoch = _eval_epoch(job)
    if epoch is None:
        return None
    path = layout.results_zip(layout.eval_dir(root, model.uuid, job.id), epoch)
    return path if jobfiles.has_file(path) else None


def _read_summary(test_dir: JobPath) -> tuple[dict[str, Any] | None, str | None]:
    path = test_dir / "summary.json"
    try:
        data = json.loads(jobfiles.read_file(path, FileKind.JSON).decode("utf-8"))
    except JobFileError as exc:
        return None, f"{exc}."
    except UnicodeDecodeError:
        return None, f"{path} is not UTF-8 text."
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        return None, f"{path} is not valid JSON{where}."
    if not isinstance(data, dict):
        return None, "summary.json is not a JSON object."
    data.pop("checkpoint", None)  # a path inside the container: meaningless here
    return data, None


def _number(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and re.fullmatch(r"-?\d+", value.strip()):
        return int(number)
    return number


def _read_test_csv(test_dir: JobPath) -> tuple[list[str], list[dict[str, Any]], str | None]:
    path = test_dir / "test.csv"
    reader: Any = None
    try:
        with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
            lines = jobfiles.bounded_lines(handle, MAX_TEST_LINE_BYTES)
            reader = csv.DictReader(line.decode("utf-8") for line in lines)
            columns = list(reader.fieldnames or [])
            rows: list[dict[str, Any]] = []
            for row in reader:
                if len(rows) >= MAX_TEST_ROWS:
                    break
                rows.append({k: _number(v or "") for k, v in row.items() if k is not None})
    except JobFileError as exc:
        return [], [], f"{exc}."
    except LineTooLong as exc:
        return [], [], f"{path} line {exc.line} is longer than {MAX_TEST_LINE_BYTES} bytes."
    except (UnicodeDecodeError, csv.Error) as exc:
        line = f" line {reader.line_num}" if reader is not None else ""
        why = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "is not valid CSV"
        return [], [], f"{path}{line} {why}."
    return columns, rows, None


@bp.get("/<model_uuid>/results")
def results(model_uuid: str) -> tuple[Response, int]:
    """The latest successful test (EVAL job): summary.json and the rows of test.csv."""
    key = parse_uuid(model_uuid)
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        job = _latest_successful_eval_or_404(session, model)
        root = jobfiles.job_root(rt.settings)
        test_dir = layout.eval_dir(root, model.uuid, job.id) / "test"
        summary, summary_problem = _read_summary(test_dir)
        columns, rows, csv_problem = _read_test_csv(test_dir)
        zip_problem = None
        try:
            zip_file = _zip_path(root, model, job)
        except JobFileError as exc:
            zip_file, zip_problem = None, f"{exc}."
        problems = [p for p in (summary_problem, csv_problem, zip_problem) if p]
        answer: responses.Results = {
            "jobId": job.id,
            "attempt": job.attempt,
            "epoch": _eval_epoch(job),
            "finishedDttm": format_time(job.finished_dttm, rt.settings.tz),
            "summary": summary,
            "columns": columns,
            "rows": rows,
            "downloadAvailable": zip_file is not None,
            "downloadUrl": f"/api/models/{model.uuid}/results/download"
            if zip_file is not None
            else None,
            "problems": problems,
        }
        return ok(answer)


def _safe_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"


@bp.get("/<model_uuid>/results/download")
def download(model_uuid: str) -> Response:
    """The results zip of the latest successful test."""
    key = parse_uuid(model_uuid)
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        job = _latest_successful_eval_or_404(session, model)
        missing = ApiError(
            404, "RESULTS_FILE_MISSING", f"The results zip of job {job.id} is not on disk."
        )
        epoch = _eval_epoch(job)
        if epoch is None:
            raise missing
        eval_dir = layout.eval_dir(jobfiles.job_root(rt.settings), model.uuid, job.id)
        try:
            handle = jobfiles.open_file(layout.results_zip(eval_dir, epoch), FileKind.RESULTS_ZIP)
        except JobFileError as exc:
            if exc.reason is jobfiles.Reason.MISSING:
                raise missing from None
            raise ApiError(409, "RESULTS_FILE_REFUSED", f"{exc}.") from None
        name = (
            f"{_safe_part(model.model_no)}_{_safe_part(model.model_ver)}_"
            f"{str(model.uuid)[:8]}_results_epoch_{_eval_epoch(job)}.zip"
        )
    # send_file streams the descriptor the gate opened (and closes it), never a path; the size
    # and time come from that same descriptor.
    info = os.fstat(handle.fileno())
    response = send_file(
        handle,
        mimetype="application/zip",
        as_attachment=True,
        download_name=name,
        last_modified=info.st_mtime,
    )
    response.content_length = info.st_size
    return response
