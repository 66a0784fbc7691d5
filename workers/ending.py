"""When a container ends (or is found missing, or is stopped on cancel), on the node that owns it.

Record before remove: the exit code, OOM flag, finish time and log tail are committed before
the container is removed. Then the judgement (SPEC §5) and the metric ingest run as one
`complete_job` task on the metrics queue (workers/completion.py), published through the
outbox in the same commit, so a crash between the two steps loses nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import jobfiles, messaging
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout
from app.domain.jobtext import storable_or_none
from app.domain.states import JobType
from app.domain.timefmt import utcnow
from app.services.observations import record_progress
from app.services.outbox import enqueue, publish_pending
from workers import outputs
from workers.context import WorkerContext
from workers.gpus import release_gpus
from workers.requeue import republish_queued
from workers.runtime.base import ContainerState

log = logging.getLogger(__name__)

LAUNCH_FAILED_EXIT = 125  # Docker's code for "the container could not be run at all"


def observe_end(
    ctx: WorkerContext, job_id: int, state: ContainerState | None, launch_error: str | None = None
) -> None:
    """Record how the job's container ended (None: it is missing), then remove it."""
    with ctx.db() as session:
        row = session.execute(
            select(Job.container_name, Job.job_type, Model.uuid)
            .join(Model, Model.id == Job.model_id)
            .where(Job.id == job_id)
        ).one_or_none()
    if row is None:
        return
    stored, job_type, model_uuid = row
    name = ctx.container_of(job_id, stored)
    tail = ctx.runtime.logs_tail(name, ctx.node.log_tail_lines) if state is not None else ""
    if launch_error:  # "IMAGE_NOT_FOUND: …" first, then what a created container printed
        tail = f"{launch_error}\n{tail}".strip()
    if JobType(job_type) is JobType.TRAIN:
        _record_final_progress(ctx, job_id, model_uuid)

    outbox_ids: list[int] = []
    with transaction(ctx.db) as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
        if job.container_ended_dttm is None:
            outbox_ids += record_end(
                session,
                job,
                ended_at=(state.finished_at if state else None) or utcnow(),
                started_at=state.started_at if state else None,
                exit_code=LAUNCH_FAILED_EXIT
                if launch_error
                else (state.exit_code if state else None),
                missing=state is None and not launch_error,
                oom_killed=bool(state and state.oom_killed),
                log_tail=tail or None,
                launch_error=launch_error,
            )
    publish_pending(ctx.db, ctx.publisher, only_ids=outbox_ids)
    remove_container(ctx, job_id, name)


def record_end(
    session: Session,
    job: Job,
    *,
    ended_at: datetime,
    exit_code: int | None,
    missing: bool,
    oom_killed: bool,
    log_tail: str | None,
    node_lost: bool = False,
    started_at: datetime | None = None,
    launch_error: str | None = None,
) -> list[int]:
    """Write what is known of how the job's container ended and queue its judgement
    (`complete_job`) in the same commit. Returns the outbox ids.

    A job already ended (a cancel, applied by the API before its container stopped) is
    queued too: its judgement is done, but the epochs its container finished meanwhile are
    ingested then (SPEC §9, "Every ending keeps its data")."""
    job.container_ended_dttm = ended_at
    # The container's own start (the runtime's), kept for the judgement: the start
    # observation may have lost the race with the end, or be the launcher's clock.
    job.started_dttm = started_at or job.started_dttm
    job.container_exit_code = exit_code
    job.container_missing = missing
    job.oom_killed = oom_killed
    job.log_tail = storable_or_none(log_tail)  # a job's log may hold NUL or invalid UTF-8
    job.launch_error = storable_or_none(launch_error)  # may quote an engine's message
    if node_lost:
        job.node_lost = True
    message = enqueue(session, messaging.COMPLETE_JOB, messaging.QUEUE_METRICS, {"job_id": job.id})
    return [message.id]


def remove_container(ctx: WorkerContext, job_id: int, name: str) -> None:
    """Remove, then mark gone and free the GPUs; then wake the jobs that waited for either."""
    ctx.runtime.remove(name)
    with transaction(ctx.db) as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
        job.container_gone_dttm = job.container_gone_dttm or utcnow()
        had_gpus = bool(job.gpu_ids)
        model_id = job.model_id
        release_gpus(session, job_id)
    republish_queued(ctx, model_id=model_id)
    if had_gpus:
        republish_queued(ctx, gpu_only=True)


def stop_and_collect(ctx: WorkerContext, job_id: int) -> str:
    """Cancel's second half: SIGTERM, grace period, SIGKILL; verify; record; remove."""
    with ctx.db() as session:
        name = session.scalar(select(Job.container_name).where(Job.id == job_id))
    if name is None:
        return f"job {job_id} does not exist"
    state = ctx.runtime.stop(name, ctx.node.stop_grace_s)
    if state is not None and state.running:
        raise RuntimeError(f"{name} still runs after stop; the task will be retried")
    observe_end(ctx, job_id, state)
    return f"{name} stopped" if state is not None else f"{name} was already gone"


def _record_final_progress(ctx: WorkerContext, job_id: int, model_uuid: object) -> None:
    """The last checkpoint (e.g. the one written on SIGTERM) is what a resume continues from."""
    progress = outputs.read_progress(layout.train_dir(jobfiles.job_root(ctx.settings), model_uuid))
    if progress is not None:
        record_progress(ctx.db, job_id, *progress)
