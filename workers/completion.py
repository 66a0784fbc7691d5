"""Judge a finished job and ingest its metrics, in one transaction (SPEC §5).

Runs as the `complete_job` task on the metrics queue after the owning node recorded how the
container ended. The model row is locked; the status transition and the metric rows commit
together, and a replay (a redelivered message, the sweep) finds the job ended and does nothing.

Bounded (Settings.bounds): each try is counted in the job row before it starts, so a try that
crashes, hangs or dies with its worker still counts; the sweep re-publishes a failed one only
after a backoff; the try after the last allowed one ends the job FAILED (step ERROR) with
`COMPLETION_FAILED: <last error>` instead of trying again. The container was removed and its
GPUs released when its end was recorded (workers/ending.py), before any try.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout
from app.domain.completion import (
    COMPLETION_FAILED,
    ContainerEnd,
    gave_up,
    judge,
    output_gap,
    short_reason,
)
from app.domain.states import JobType
from app.domain.transitions import JobEvent, JobObservation
from app.jobfiles import JobPath, job_root
from app.services.observations import observe
from app.services.publisher import Publisher
from app.services.status_writes import lock_job, stamp_step_times
from workers import container_writes, outputs

log = logging.getLogger(__name__)


def complete_job(
    db: sessionmaker[Session], settings: Settings, publisher: Publisher | None, job_id: int
) -> str:
    attempt = container_writes.begin_completion_try(db, job_id)
    if attempt is container_writes.ALREADY_ENDED:
        return _keep_data_of_ended_job(db, settings, job_id)
    if isinstance(attempt, str):
        return attempt
    number, last_error = attempt
    limits = settings.bounds
    if number > limits.max_attempts:
        return _give_up(db, publisher, job_id, last_error)
    try:
        return _judge_and_ingest(db, settings, publisher, job_id)
    except Exception as exc:
        reason = short_reason(exc)
        log.warning("completion of job %s failed (try %s of %s): %s", job_id, number,
                    limits.max_attempts, reason)  # fmt: skip
        container_writes.record_attempt_error(db, job_id, reason)
        if number >= limits.max_attempts:
            return _give_up(db, publisher, job_id, reason)
        return f"job {job_id}: completion try {number} failed ({reason}); the sweep retries"


def _give_up(
    db: sessionmaker[Session], publisher: Publisher | None, job_id: int, reason: str | None
) -> str:
    """The attempts are used up: end the job through the status-write path."""

    def look(_session: Session, _model: Model, job: Job) -> JobObservation | str:
        if job.status.is_terminal:  # a slow earlier try got there first
            return f"job {job_id} already ended as {job.status_cd}"
        return _with_container_times(
            gave_up(COMPLETION_FAILED, reason, job.container_exit_code), job
        )

    write = observe(db, publisher, job_id, look)
    if isinstance(write, str):
        return write
    verdict = f"job {job_id}: {write.model.last_error}"
    tries = write.job.completion_attempts if write.job is not None else "?"
    log.error("%s (gave up after %s tries)", verdict, tries)
    return verdict if write.accepted else f"{verdict} (refused: {write.decision})"


def _judge_and_ingest(
    db: sessionmaker[Session], settings: Settings, publisher: Publisher | None, job_id: int
) -> str:
    """Judge by the recorded end and the outputs; the metric rows commit with the verdict."""
    judged: list[JobObservation] = []

    def look(session: Session, model: Model, job: Job) -> JobObservation | str:
        if job.status.is_terminal:
            return f"job {job_id} already ended as {job.status_cd}"
        output_dir = layout.job_output_dir(job_root(settings), model.uuid, job.type, job.id)
        if job.container_missing:  # its node never read the last progress (node lost)
            _record_progress_from_outputs(model, job, output_dir)
        observation = _judge(model, job, output_dir)
        if observation.event is JobEvent.SUCCEEDED:
            observation = _ingest(session, model, job, output_dir, observation)
        else:  # a failed or stopped run keeps the curves of the epochs it finished
            _ingest_what_is_there(session, model, job, output_dir)
        container_writes.completion_try_finished(job)
        judged.append(observation)
        return _with_container_times(observation, job)

    write = observe(db, publisher, job_id, look)
    if isinstance(write, str):
        return write
    verdict = f"job {job_id}: {judged[0].event} {judged[0].error or ''}".strip()
    log.info(verdict)
    return verdict if write.accepted else f"{verdict} (refused: {write.decision})"


def _judge(model: Model, job: Job, output_dir: JobPath) -> JobObservation:
    epoch = job.params.get("epoch")
    facts = outputs.probe(job.type, output_dir, int(epoch) if epoch is not None else None)
    total = job.params.get("total_epoch")
    gap = output_gap(job.type, facts, int(total) if total is not None else None, model.val_interval)
    container = (
        None
        if job.container_missing
        else ContainerEnd(int(job.container_exit_code or 0), bool(job.oom_killed))
    )
    return judge(
        container,
        gap,
        job.log_tail,
        node_lost=bool(job.node_lost),
        launch_failure=job.launch_error,
    )


def _ingest(
    session: Session, model: Model, job: Job, output_dir: JobPath, succeeded: JobObservation
) -> JobObservation:
    """Metrics in the same commit as SUCCESS; a bad file turns the verdict into a failure."""
    from app.metrics import MetricsError

    try:
        with session.begin_nested():
            _ingest_outputs(session, model, job, output_dir)
    except MetricsError as exc:
        return JobObservation(
            JobEvent.FAILED, succeeded.exit_code, f"OUTPUT_INCOMPLETE: {exc}", job.log_tail
        )
    return succeeded


def _with_container_times(observation: JobObservation, job: Job) -> JobObservation:
    """Times measure what they name (SPEC §9): the container's start and end as its node
    recorded them, not the moment this judgement ran."""
    return replace(observation, started_at=job.started_dttm, ended_at=job.container_ended_dttm)


def _ingest_what_is_there(session: Session, model: Model, job: Job, output_dir: JobPath) -> bool:
    """The metrics of a run that did not succeed, keyed and replacing as for a success; a
    file that is missing or bad changes nothing (the verdict already says what went wrong)."""
    from app.metrics import MetricsError
    from app.metrics.ingest import keep_train_outputs

    if job.type is JobType.TRAIN:
        kept = keep_train_outputs(session, model, job, output_dir)
        if len(kept) < 2:
            log.info("job %s left metrics to keep for %s only", job.id, kept or "nothing")
        return bool(kept)
    try:
        with session.begin_nested():
            _ingest_outputs(session, model, job, output_dir)
    except MetricsError as exc:
        log.info("job %s left no complete metrics to keep: %s", job.id, exc)
        return False
    return True


def _ingest_outputs(session: Session, model: Model, job: Job, output_dir: JobPath) -> None:
    from app.metrics import ingest_eval_outputs, ingest_train_outputs

    if job.type is JobType.TRAIN:
        ingest_train_outputs(session, model, job, output_dir)
    else:
        ingest_eval_outputs(session, model, job, output_dir)


def _record_progress_from_outputs(model: Model, job: Job, output_dir: JobPath) -> None:
    """Epochs done and the latest checkpoint, read (through the gate) from progress.json:
    what the node would have recorded had it seen the end. Only for the current attempt."""
    if job.type is not JobType.TRAIN or model.current_attempt_id != job.id:
        return
    progress = outputs.read_progress(output_dir)
    if progress is not None:
        model.epochs_done, model.checkpoint_epoch = progress


def _keep_data_of_ended_job(db: sessionmaker[Session], settings: Settings, job_id: int) -> str:
    """A job that ended before its container did — a cancel, applied by the API at once,
    the container stopped later by its node: ingest the epochs the container finished and
    date the end by the container's (which also marks this done). Keyed and replacing, so
    even a replay would change nothing; only while the job is the model's current attempt (a
    later attempt owns the metrics then)."""
    with transaction(db) as session:
        locked = lock_job(session, job_id)
        if locked is None:
            return f"job {job_id} does not exist"
        model, job = locked
        ended = f"job {job_id} already ended as {job.status_cd}"
        if job.container_ended_dttm is None or model.current_attempt_id != job.id:
            return ended
        if job.finished_dttm == job.container_ended_dttm:
            # Judged after its container's end (its times are the container's), or this was
            # done already: a replay, a status sync, finds nothing left to do.
            return ended
        output_dir = layout.job_output_dir(job_root(settings), model.uuid, job.type, job.id)
        if job.container_missing:
            _record_progress_from_outputs(model, job, output_dir)
        kept = _ingest_what_is_there(session, model, job, output_dir)
        job.finished_dttm = job.container_ended_dttm
        stamp_step_times(model, job.type.step, job.started_dttm, job.container_ended_dttm)
    return f"{ended}; its metrics {'kept' if kept else 'were incomplete'}"
