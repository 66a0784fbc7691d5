"""Rows → the JSON fields of the user document §2.1 (camelCase, Korean names, display times).

Each function returns the response type of app/api/responses.py that the OpenAPI document is
generated from: a plain dict literal (the list is hot: no per-row validation), which a type
checker holds to that type and the API tests validate against it."""

from __future__ import annotations

import functools
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Row
from sqlalchemy.orm import Session, object_session

from app.api import responses
from app.db.models import Job, Model
from app.domain.checkpoints import checkpoint_epochs
from app.domain.states import JOB_ACTIVE, JobStatus, ModelStatus, StepState, TrainType
from app.domain.timefmt import format_duration, format_seconds, format_time
from app.domain.transitions import ModelSnapshot, allowed_commands
from app.domain.webhooks import redacted
from app.services.images import missing_image
from app.services.queries import ModelRow, queue_position, queue_positions
from app.services.status_writes import snapshot
from app.services.training_time import TrainingTime, training_of_jobs, training_times

# Display names by stored value: a dict lookup per field instead of an enum call (the list
# formats 20 rows of them per request).
_TRAIN_TYPE_NAMES = {t.value: t.display_name for t in TrainType}
_STATUS_NAMES = {s.value: s.display_name for s in ModelStatus}
_STEP_NAMES = {s.value: s.display_name for s in StepState}


def _train_type_name(value: str) -> str:
    return _TRAIN_TYPE_NAMES.get(value, value)


def progress(model: ModelRow) -> responses.Progress:
    total = model.total_epoch
    done = model.epochs_done or 0
    return {
        "epochsDone": done,
        "totalEpoch": total,
        "percent": round(100 * min(done, total) / total, 1) if total else 0.0,
        "checkpointEpoch": model.checkpoint_epoch,
    }


def model_summary(
    model: ModelRow,
    tz: ZoneInfo,
    queue_places: dict[int, int] | None = None,
    session: Session | None = None,
    trainings: dict[int, TrainingTime] | None = None,
) -> responses.ModelSummary:
    """`model`: a `Model`, or a row of `queries.SUMMARY_COLUMNS` (the list's). `queue_places`:
    `queries.queue_positions` of a whole list page, looked up in one query; without it a
    `Model`'s own is looked up. `session` (a row's; a `Model` has its own) tells whether a live
    node has the model's image (app/services/images.py, read once per session). `trainings`:
    `training_times` of a whole list page, like `queue_places`."""
    if queue_places is None:
        queue_places = _queue_places(model) if isinstance(model, Model) else {}
    if session is None and isinstance(model, Model):
        session = object_session(model)
    image_missing = missing_image(session, model.image) if session is not None else None
    if isinstance(model, Row | tuple):  # a list row (SQLAlchemy's, or the driver's)
        summary = _row_summary(model, tz, image_missing).copy()
        summary["allowedCommands"] = list(summary["allowedCommands"])  # each answer its own
    else:
        summary = _summary(model, tz, image_missing)
    summary["queuePosition"] = queue_places.get(model.id)
    if trainings is None:
        trainings = training_times(session, [model]) if session is not None else {}
    _add_training(summary, trainings.get(model.id), tz)
    return summary


def _add_training(
    summary: responses.ModelSummary, training: TrainingTime | None, tz: ZoneInfo
) -> None:
    """"학습 시간" across the training's attempts (app/services/training_time.py)."""
    if training is None:
        return
    summary["step1FirstStrtDttm"] = format_time(training.started, tz)
    if training.run_seconds is not None:
        summary["step1TotalDuration"] = format_seconds(training.run_seconds)
    summary["step1Attempts"] = training.attempts


def _summary(model: ModelRow, tz: ZoneInfo, image_missing: str | None) -> responses.ModelSummary:
    """Everything but the queue position, which the row does not hold."""
    step1, step2 = model.step1_state, model.step2_state
    return {
        "id": model.id,
        "uuid": str(model.uuid),
        "modelVer": model.model_ver,
        "statusCd": model.status_cd,
        "statusName": _STATUS_NAMES[model.status_cd],
        "step1Status": step1,
        "step1StatusName": _STEP_NAMES[step1],
        "step2Status": step2,
        "step2StatusName": _STEP_NAMES[step2],
        "step1StrtDttm": format_time(model.step1_strt_dttm, tz),
        "step1EndDttm": format_time(model.step1_end_dttm, tz),
        "step1Duration": format_duration(model.step1_strt_dttm, model.step1_end_dttm),
        # One attempt or none until training_times() says otherwise (model_summary).
        "step1FirstStrtDttm": format_time(model.step1_strt_dttm, tz),
        "step1TotalDuration": format_duration(model.step1_strt_dttm, model.step1_end_dttm),
        "step1Attempts": 0,
        "step2StrtDttm": format_time(model.step2_strt_dttm, tz),
        "step2EndDttm": format_time(model.step2_end_dttm, tz),
        "step2Duration": format_duration(model.step2_strt_dttm, model.step2_end_dttm),
        "modelNo": model.model_no,
        "trainType": model.train_type,
        "trainTypeName": _train_type_name(model.train_type),
        "currentAttemptId": model.current_attempt_id,
        "memo": model.memo,
        "bestEpoch": model.best_epoch,
        "lastError": model.last_error,
        "step1MetricSaveYn": model.step1_metric_save_yn,
        "step2MetricSaveYn": model.step2_metric_save_yn,
        "progress": progress(model),
        "queuePosition": None,
        "allowedCommands": list(_allowed_command_names(snapshot(model, image_missing))),
        "retryStatus": model.retry_status,
    }


# The summary of a list row is a function of the row's values (and the display time zone)
# alone, and a dashboard asks for the same rows again and again: formatting 20 of them was a
# third of a page's time. Keyed by value, so a row that changed in any column is a new key; a
# few MB per process at most. The key is the row's plain tuple: a Row hashes and compares
# through Python code (an lru_cache keyed by the Row spent more on that than it saved).
_ROW_SUMMARIES: dict[tuple[object, ...], responses.ModelSummary] = {}
_ROW_SUMMARIES_MAX = 2048


def _row_summary(
    row: Row[Any] | tuple[Any, ...], tz: ZoneInfo, image_missing: str | None
) -> responses.ModelSummary:
    key = (*row, tz, image_missing)
    summary = _ROW_SUMMARIES.get(key)
    if summary is None:
        if len(_ROW_SUMMARIES) >= _ROW_SUMMARIES_MAX:
            _ROW_SUMMARIES.clear()  # rarely: simpler than an LRU, and as good for a dashboard
        summary = _ROW_SUMMARIES[key] = _summary(cast(ModelRow, row), tz, image_missing)
    return summary


@functools.lru_cache(maxsize=1024)
def _allowed_command_names(model: ModelSnapshot) -> tuple[str, ...]:
    """`allowed_commands`, by snapshot (which is all it depends on): a list page has few
    distinct ones, and asking `decide()` six times for each of 20 rows was a tenth of a
    page's time."""
    return tuple(c.api_name for c in allowed_commands(model))


def job_detail(job: Job, tz: ZoneInfo, session: Session | None = None) -> responses.Job:
    """`job`: a `Job`, or a row of its columns read in `session` (a `Job` has its own)."""
    status = JobStatus(job.status_cd)
    return {
        "id": job.id,
        "attempt": job.attempt,
        "jobType": job.job_type,
        "statusCd": status.value,
        "statusName": status.display_name,
        "exitCode": job.exit_code,
        "containerExitCode": job.container_exit_code,
        "oomKilled": job.oom_killed,
        "errorMessage": job.error_message,
        "node": job.node,
        "containerName": job.container_name,
        "gpuIds": job.gpu_ids,
        "params": job.params,
        "queuedDttm": format_time(job.queued_dttm, tz),
        "startedDttm": format_time(job.started_dttm, tz),
        "finishedDttm": format_time(job.finished_dttm, tz),
        "duration": format_duration(job.started_dttm, job.finished_dttm),
        "queuePosition": _job_queue_position(job, session),
        "priority": job.priority,
        "retryNumber": job.retry_number,
        "endCause": job.end_cause,
        "retryNote": job.retry_note,
    }


def _queue_places(model: Model) -> dict[int, int]:
    """Where the model's waiting job stands in the launch queue, by model id; empty when none
    waits (or the model is not in a session, as a model just created)."""
    session = object_session(model)
    return {} if session is None else queue_positions(session, [model])


def _job_queue_position(job: Job, session: Session | None) -> int | None:
    session = object_session(job) if isinstance(job, Job) else session
    if session is None or job.status_cd != JobStatus.QUEUED.value:
        return None
    return queue_position(session, job)


def model_detail(
    model: Model, jobs: list[Job], tz: ZoneInfo, session: Session | None = None
) -> responses.ModelDetail:
    """`jobs`: all the model's jobs, by id. `model` and `jobs`: ORM objects, or rows of
    `queries.DETAIL_COLUMNS` and of the job table read in `session`. The model waits where
    its QUEUED job does (as `queries.queue_positions` has it: at most one, the newest), so
    that is not looked up twice."""
    if isinstance(model, Model):
        session = object_session(model)
    shown = [job_detail(job, tz, session) for job in jobs]
    waiting = [j["queuePosition"] for j in shown if j["queuePosition"] is not None]
    image_missing = missing_image(session, model.image) if session is not None else None
    summary = _summary(model, tz, image_missing)
    _add_training(summary, training_of_jobs(jobs), tz)
    return {
        **summary,
        "queuePosition": waiting[-1] if waiting else None,
        "params": model.params,
        "image": model.image,
        "dataset": model.dataset,
        "usesDataset": model.uses_dataset,
        "resources": cast(responses.ResourceRequests, model.resources),  # what CreateModel stored
        "shmSizeMb": model.shm_size_mb,
        "env": dict(model.env),
        "network": model.network,
        "stallTimeoutS": model.stall_timeout_s,
        "priority": model.priority,
        "retryPolicy": cast(responses.RetryPolicy | None, model.retry_policy),
        "webhookEndpoint": redacted(model.webhook_url) if model.webhook_url else None,
        "webhookFormat": cast(Literal["json", "slack"] | None, model.webhook_format),
        "createdDttm": format_time(model.created_dttm, tz),
        "checkpointEpochs": checkpoint_epochs(
            model.total_epoch, model.val_interval, model.checkpoint_epoch
        ),
        "jobs": shown,
    }


def log_answer(model: Model, job: Job, tz: ZoneInfo) -> responses.LogAnswer:
    """GET /api/models/<uuid>/logs: a job's stored log tail, or a note saying why none is,
    and where its whole log is streamed and downloaded."""
    status = JobStatus(job.status_cd)
    tail = job.log_tail
    if tail is None and job.error_message and status is JobStatus.FAILED:
        tail = job.error_message  # a failure keeps the log tail as its error message
    live = status in JOB_ACTIVE
    if tail:
        note = None
    elif live:
        note = (
            f"Job {job.id} is {job.status_cd}: its log tail is stored when the container ends; "
            "follow its whole log live with ?follow=1 (or page it with ?offset=)."
        )
    else:
        note = f"No log was stored for job {job.id}."
    return {
        "jobId": job.id,
        "attempt": job.attempt,
        "jobType": job.job_type,
        "statusCd": status.value,
        "statusName": status.display_name,
        "exitCode": job.exit_code,
        "containerExitCode": job.container_exit_code,
        "oomKilled": job.oom_killed,
        "errorMessage": job.error_message,
        "finishedDttm": format_time(job.finished_dttm, tz),
        "running": live,
        "available": bool(tail),
        "logTail": tail,
        "note": note,
        "streamUrl": f"/api/models/{model.uuid}/logs?follow=1&jobId={job.id}",
        "downloadUrl": f"/api/models/{model.uuid}/logs/download?jobId={job.id}",
    }
