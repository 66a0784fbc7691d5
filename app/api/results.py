"""/api/models/<uuid>/{logs,results,results/download}: read-only views of a model's jobs and
outputs for the dashboard's log view and its [결과 보기] / [다운로드] buttons.

Every file path is built from the model's uuid and a job id taken from the database, through
`app.domain.layout`; nothing in a request ever becomes part of a path.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, request, send_file
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.envelope import ApiError, ok
from app.api.params import model_or_404, parse_uuid
from app.db.models import Job, Model
from app.domain import layout
from app.domain.states import JobStatus, JobType
from app.domain.timefmt import format_time
from app.runtime import runtime
from app.services.queries import jobs_of

bp = Blueprint("results", __name__, url_prefix="/api/models")

#: test.csv has one data row per tested epoch; more than this is not a result file.
MAX_TEST_ROWS = 1000
#: summary.json is a few KB; refuse to parse anything absurd.
MAX_SUMMARY_BYTES = 5 * 1024 * 1024
_LIVE = frozenset({JobStatus.QUEUED.value, JobStatus.RUNNING.value})


def _job_id_query() -> int | None:
    raw = request.args.get("jobId", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ApiError(400, "INVALID_QUERY", f"jobId: must be a job id (an integer), got '{raw}'.")
    return int(raw)


@bp.get("/<model_uuid>/logs")
def logs(model_uuid: str) -> tuple[Response, int]:
    """The log tail of the model's current (or last) job, or of `?jobId=` among its jobs.

    The tail is stored when a container ends (before it is removed); a job still queued or
    running has none yet, and the answer says so in `note`.
    """
    key = parse_uuid(model_uuid)
    wanted = _job_id_query()
    rt = runtime()
    with rt.reads() as session:
        model = model_or_404(session, key)
        jobs = jobs_of(session, model)
        job = _pick_job(model, jobs, wanted)
        if job is None:
            return ok(
                {
                    "jobId": None,
                    "logTail": None,
                    "available": False,
                    "note": "This model has no jobs yet.",
                }
            )
        return ok(_log_answer(job, rt.settings.tz))


def _pick_job(model: Model, jobs: list[Job], wanted: int | None) -> Job | None:
    if wanted is not None:
        for job in jobs:
            if job.id == wanted:
                return job
        raise ApiError(404, "JOB_NOT_FOUND", f"This model has no job {wanted}.")
    for job in jobs:
        if job.id == model.current_attempt_id:
            return job
    return jobs[-1] if jobs else None


def _log_answer(job: Job, tz: Any) -> dict[str, Any]:
    tail = job.log_tail
    if tail is None and job.error_message and job.status_cd == JobStatus.FAILED.value:
        tail = job.error_message  # a failure keeps the log tail as its error message
    live = job.status_cd in _LIVE
    if tail:
        note = None
    elif live:
        note = (
            f"Job {job.id} is {job.status_cd}: its log tail is stored when the container ends. "
            "Progress and curves update while it runs."
        )
    else:
        note = f"No log was stored for job {job.id}."
    return {
        "jobId": job.id,
        "attempt": job.attempt,
        "jobType": job.job_type,
        "statusCd": job.status_cd,
        "statusName": JobStatus(job.status_cd).display_name,
        "exitCode": job.exit_code,
        "oomKilled": job.oom_killed,
        "errorMessage": job.error_message,
        "finishedDttm": format_time(job.finished_dttm, tz),
        "running": live,
        "available": bool(tail),
        "logTail": tail,
        "note": note,
    }


def _latest_successful_eval_or_404(session: Session, model: Model) -> Job:
    job = _latest_successful_eval(session, model)
    if job is None:
        raise ApiError(404, "NO_RESULTS", "This model has no successful test yet.")
    return job


def _latest_successful_eval(session: Session, model: Model) -> Job | None:
    return session.scalars(
        select(Job)
        .where(
            Job.model_id == model.id,
            Job.job_type == JobType.EVAL.value,
            Job.status_cd == JobStatus.SUCCESS.value,
        )
        .order_by(Job.id.desc())
        .limit(1)
    ).one_or_none()


def _eval_epoch(job: Job) -> int | None:
    value = (job.params or {}).get("epoch")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _zip_path(output_root: Path, model: Model, job: Job) -> Path | None:
    epoch = _eval_epoch(job)
    if epoch is None:
        return None
    path = layout.results_zip(layout.eval_dir(output_root, model.uuid, job.id), epoch)
    return path if path.is_file() else None


def _read_summary(test_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    path = test_dir / "summary.json"
    if not path.is_file():
        return None, "summary.json is missing."
    if path.stat().st_size > MAX_SUMMARY_BYTES:
        return None, "summary.json is too large to show."
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"summary.json could not be read: {exc}"
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


def _read_test_csv(test_dir: Path) -> tuple[list[str], list[dict[str, Any]], str | None]:
    path = test_dir / "test.csv"
    if not path.is_file():
        return [], [], "test.csv is missing."
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = []
            for row in reader:
                if len(rows) >= MAX_TEST_ROWS:
                    break
                rows.append({k: _number(v or "") for k, v in row.items() if k is not None})
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [], [], f"test.csv could not be read: {exc}"
    return columns, rows, None


@bp.get("/<model_uuid>/results")
def results(model_uuid: str) -> tuple[Response, int]:
    """The latest successful test (EVAL job): summary.json and the rows of test.csv."""
    key = parse_uuid(model_uuid)
    rt = runtime()
    with rt.reads() as session:
        model = model_or_404(session, key)
        job = _latest_successful_eval_or_404(session, model)
        test_dir = layout.eval_dir(rt.settings.output_root, model.uuid, job.id) / "test"
        summary, summary_problem = _read_summary(test_dir)
        columns, rows, csv_problem = _read_test_csv(test_dir)
        zip_file = _zip_path(rt.settings.output_root, model, job)
        problems = [p for p in (summary_problem, csv_problem) if p]
        return ok(
            {
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
        )


def _safe_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "model"


@bp.get("/<model_uuid>/results/download")
def download(model_uuid: str) -> Response:
    """The results zip of the latest successful test."""
    key = parse_uuid(model_uuid)
    rt = runtime()
    with rt.reads() as session:
        model = model_or_404(session, key)
        job = _latest_successful_eval_or_404(session, model)
        zip_file = _zip_path(rt.settings.output_root, model, job)
        if zip_file is None:
            raise ApiError(
                404, "RESULTS_FILE_MISSING", f"The results zip of job {job.id} is not on disk."
            )
        name = (
            f"{_safe_part(model.model_no)}_{_safe_part(model.model_ver)}_"
            f"{str(model.uuid)[:8]}_results_epoch_{_eval_epoch(job)}.zip"
        )
    return send_file(zip_file, mimetype="application/zip", as_attachment=True, download_name=name)
