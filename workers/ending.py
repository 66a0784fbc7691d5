"""When a container ends (or is found missing, or is stopped on cancel), on the node that owns it.

Record before remove: the rest of the container's output is stored with its log
(app/joblogs.py), and the exit code, OOM flag, finish time and log tail are committed, before
the container is removed. Then the judgement (SPEC §5) and the metric ingest run as one
`complete_job` task on the metrics queue (workers/completion.py), published through the
outbox in the same commit, so a crash between the two steps loses nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from app import jobfiles
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout
from app.domain.states import JobType
from app.domain.timefmt import utcnow
from app.domain.transitions import JobEvent, JobObservation
from app.services.observations import record_observation, record_progress
from app.services.outbox import publish_pending
from workers import container_writes, outputs
from workers.context import WorkerContext
from workers.logcollector import runtime_tail, store_final_log
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
    tail = ""
    if state is not None:
        # Everything it printed is stored before the end is recorded: a reader that sees the
        # end has every byte (workers/logcollector.py).
        stored_tail = store_final_log(ctx, job_id, name, model_uuid)
        tail = stored_tail if stored_tail is not None else runtime_tail(ctx, name)
    if launch_error:
        tail = f"{launch_error}\n{tail}".strip()  # "IMAGE_NOT_FOUND: …" first
    if JobType(job_type) is JobType.TRAIN:
        _record_final_progress(ctx, job_id, model_uuid)

    outbox_ids: list[int] = []
    with transaction(ctx.db) as session:
        job = container_writes.lock_job_row(session, job_id)
        if job is not None and not job.container_phase.end_recorded:
            outbox_ids += container_writes.record_end(
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


def remove_container(ctx: WorkerContext, job_id: int, name: str) -> None:
    """Remove, then mark gone and free the GPUs; then wake the jobs that waited for either."""
    ctx.runtime.remove(name)
    model_id, had_gpus = container_writes.mark_gone(ctx.db, job_id)
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


def fail_and_stop(ctx: WorkerContext, job_id: int, error: str, tail: str | None) -> bool:
    """A node's own reason to end a running job (a stall, a scratch over its limit): through
    the status-write path first (`FAILED` with `error`, so the job names the cause, not the
    SIGTERM's exit code), then stop, record and remove it like a cancel (its log and the
    epochs it finished are kept). False when it ended meanwhile: its own path stops it."""
    observation = JobObservation(JobEvent.FAILED, -1, error, tail or None)
    write = record_observation(ctx.db, ctx.publisher, job_id, observation)
    if not write.accepted:
        return False
    log.warning("job %s: %s", job_id, error)
    stop_and_collect(ctx, job_id)
    return True


def _record_final_progress(ctx: WorkerContext, job_id: int, model_uuid: object) -> None:
    """The last checkpoint (e.g. the one written on SIGTERM) is what a resume continues from."""
    progress = outputs.read_progress(layout.train_dir(jobfiles.job_root(ctx.settings), model_uuid))
    if progress is not None:
        record_progress(ctx.db, job_id, *progress)
