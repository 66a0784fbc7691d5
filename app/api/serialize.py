"""Rows → the JSON fields of the user document §2.1 (camelCase, Korean names, display times).

Each function returns the response type of app/api/responses.py that the OpenAPI document is
generated from: a plain dict literal (the list is hot: no per-row validation), which a type
checker holds to that type and the API tests validate against it."""

from __future__ import annotations

from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy.orm import object_session

from app.api import responses
from app.db.models import Job, Model
from app.domain.checkpoints import checkpoint_epochs
from app.domain.states import JOB_ACTIVE, JobStatus, ModelStatus, StepState, TrainType
from app.domain.timefmt import format_duration, format_time
from app.domain.transitions import allowed_commands
from app.services.images import missing_image
from app.services.queries import queue_position, queued_job_of
from app.services.status_writes import snapshot


def _train_type_name(value: str) -> str:
    return TrainType(value).display_name if value in TrainType.__members__ else value


def progress(model: Model) -> responses.Progress:
    total = model.total_epoch
    done = model.epochs_done or 0
    return {
        "epochsDone": done,
        "totalEpoch": total,
        "percent": round(100 * min(done, total) / total, 1) if total else 0.0,
        "checkpointEpoch": model.checkpoint_epoch,
    }


def model_summary(model: Model, tz: ZoneInfo) -> responses.ModelSummary:
    step1, step2 = StepState(model.step1_state), StepState(model.step2_state)
    return {
        "id": model.id,
        "uuid": str(model.uuid),
        "modelVer": model.model_ver,
        "statusCd": model.status_cd,
        "statusName": ModelStatus(model.status_cd).display_name,
        "step1Status": step1.value,
        "step1StatusName": step1.display_name,
        "step2Status": step2.value,
        "step2StatusName": step2.display_name,
        "step1StrtDttm": format_time(model.step1_strt_dttm, tz),
        "step1EndDttm": format_time(model.step1_end_dttm, tz),
        "step1Duration": format_duration(model.step1_strt_dttm, model.step1_end_dttm),
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
        "queuePosition": _model_queue_position(model),
        "allowedCommands": [
            c.api_name for c in allowed_commands(snapshot(model, _image_missing(model)))
        ],
    }


def _image_missing(model: Model) -> str | None:
    """Why no live node has the model's image (then no command that starts a container is
    offered); one query per session (app/services/images.py)."""
    session = object_session(model)
    return missing_image(session, model.image) if session is not None else None


def job_detail(job: Job, tz: ZoneInfo) -> responses.Job:
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
        "queuePosition": _job_queue_position(job),
    }


def _model_queue_position(model: Model) -> int | None:
    """Where the model's waiting job stands in the launch queue; None when none waits. Only a
    model with a step in progress can have one, so other rows cost no query."""
    session = object_session(model)
    in_progress = StepState.IN_PROGRESS.value in (model.step1_state, model.step2_state)
    if session is None or not in_progress:
        return None
    job = queued_job_of(session, model.id)
    return queue_position(session, job) if job is not None else None


def _job_queue_position(job: Job) -> int | None:
    session = object_session(job)
    if session is None or job.status_cd != JobStatus.QUEUED.value:
        return None
    return queue_position(session, job)


def model_detail(model: Model, jobs: list[Job], tz: ZoneInfo) -> responses.ModelDetail:
    return {
        **model_summary(model, tz),
        "params": model.params,
        "image": model.image,
        "dataset": model.dataset,
        "resources": cast(responses.ResourceRequests, model.resources),  # what CreateModel stored
        "stallTimeoutS": model.stall_timeout_s,
        "createdDttm": format_time(model.created_dttm, tz),
        "checkpointEpochs": checkpoint_epochs(
            model.total_epoch, model.val_interval, model.checkpoint_epoch
        ),
        "jobs": [job_detail(job, tz) for job in jobs],
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
