"""Reconciliation: the database and the containers agree, in both directions.

- `reconcile_node` (at worker start and every few seconds, on the node): each job this node
  claimed and whose container is not confirmed gone is compared with its container — running
  ones are re-attached (start recorded, progress read), ended or missing ones go through
  `observe_end`; a labelled container whose job no longer wants it is stopped and removed.
- `sweep` (every SWEEP_INTERVAL_S, one instance cluster-wide under a PostgreSQL advisory lock):
  publishes outbox rows a crash left behind, re-publishes QUEUED jobs whose message was lost,
  and re-publishes `complete_job` for containers that ended but were never judged — each
  within the job's attempts, after a backoff (Settings.bounds); and hands the broker the
  webhook deliveries whose retry is due (app/services/webhooks.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, text

from app import jobfiles, messaging
from app.db.models import Job, Model
from app.domain import layout
from app.domain.completion import LAUNCH_FAILED, gave_up, short_reason
from app.domain.states import JobStatus
from app.domain.timefmt import as_utc, utcnow
from app.domain.transitions import JobEvent, JobObservation
from app.services import webhooks
from app.services.observations import record_observation, record_progress
from app.services.outbox import publish_pending
from app.services.queries import held_by
from workers import container_writes, outputs
from workers.context import WorkerContext
from workers.ending import observe_end, remove_container, stop_and_collect
from workers.heartbeat import end_jobs_of_lost_nodes, presume_gone_nodes_containers_gone
from workers.requeue import republish_queued
from workers.runtime.base import LABEL_JOB_ID, ContainerState

log = logging.getLogger(__name__)

SWEEP_LOCK_KEY = 0x7472_6169  # "trai": the sweep's advisory lock id
JUDGE_AFTER_S = 30  # an ended container not judged after this long: re-publish complete_job


def _claimed_jobs(ctx: WorkerContext) -> list[tuple[Job, str]]:
    """This node's jobs whose container may still exist, with their model uuid."""
    with ctx.db() as session:
        rows = session.execute(
            select(Job, Model.uuid)
            .join(Model, Model.id == Job.model_id)
            .where(held_by(ctx.node.node))
            .order_by(Job.id)
        ).all()
        session.expunge_all()
    return [(job, str(model_uuid)) for job, model_uuid in rows]


def reconcile_node(ctx: WorkerContext, startup: bool = False) -> dict[str, int]:
    """Compare this node's claimed jobs with its labelled containers; fix what differs.

    Launches run beside this in other threads, so neither snapshot is the truth alone: jobs
    are read first and containers second (a job claimed after the first read shows up only
    as an unknown container, re-checked in the database before anything is removed), and a
    job whose container is not in the list is inspected once more before it counts as
    missing (it may have been created a moment after the list was taken).
    """
    jobs = _claimed_jobs(ctx)
    try:
        containers = {c.name: c for c in ctx.runtime.list_managed(ctx.node.node)}
    except Exception as exc:
        _runtime_silent(ctx, jobs, short_reason(exc), startup)
        raise
    counts: dict[str, int] = {}
    for job, model_uuid in jobs:
        name = ctx.container_of(job.id, job.container_name)
        state = containers.pop(name, None)
        if job.id in ctx.launching:
            continue
        if state is None:
            state = ctx.runtime.inspect(name)
        outcome = reconcile_job(ctx, job, model_uuid, state, startup)
        counts[outcome] = counts.get(outcome, 0) + 1
    for name, state in containers.items():
        if _wanted_by_a_live_job(ctx, state):
            continue
        _remove_orphan(ctx, name, state)
        counts["orphan removed"] = counts.get("orphan removed", 0) + 1
    return counts


def _wanted_by_a_live_job(ctx: WorkerContext, state: ContainerState) -> bool:
    """A container launched after the job list was read: its job is this node's and not
    confirmed gone. The next pass reconciles it."""
    job_id = state.labels.get(LABEL_JOB_ID, "")
    if not job_id.isdigit():
        return False
    with ctx.db() as session:
        job = session.get(Job, int(job_id))
        return (
            job is not None
            and job.node == ctx.node.node
            and job.container_phase.holds_container
            and job.container_name == state.name
        )


def reconcile_job(
    ctx: WorkerContext, job: Job, model_uuid: str, state: ContainerState | None, startup: bool
) -> str:
    name = job.container_name or f"trainyard-job-{job.id}"
    never_started = state is None or state.status == "created"
    if never_started and job.status is JobStatus.QUEUED and not job.container_phase.end_recorded:
        # Claimed, no container running. A launch in flight, or one that is over: this node
        # died before creating it, or the launch failed and could not give the claim back
        # (the runtime did not answer). Past the bound the claim is lost: release it and
        # remove a created-only container; the sweep re-publishes the job after its backoff,
        # within its attempts (each claim counted one).
        if job.id in ctx.launching or not (startup or _claim_lost(ctx, job)):
            return "launching"
        if state is not None:
            ctx.runtime.remove(name)
        if container_writes.release_claim(ctx.db, job.id, ctx.node.node):
            republish_queued(ctx, model_id=job.model_id)
        return "requeued"
    name = ctx.container_of(job.id, job.container_name)
    if state is None:
        if job.container_phase.end_recorded:
            remove_container(ctx, job.id, name)  # recorded, removed, not yet marked gone
            return "marked gone"
        observe_end(ctx, job.id, None)  # vanished: the outputs decide (SPEC §5)
        return "missing"
    if state.ended:
        observe_end(ctx, job.id, state)
        return "ended"
    if job.status.is_terminal:  # canceled while running, or the stop was lost
        stop_and_collect(ctx, job.id)
        return "stopped"
    if state.running:
        if job.status is JobStatus.QUEUED:
            started = JobObservation(JobEvent.STARTED, started_at=state.started_at)
            record_observation(ctx.db, ctx.publisher, job.id, started)
        _track_progress(ctx, job, model_uuid)
        return "running"
    return state.status  # "created": its launch is being retried


def sync_job(ctx: WorkerContext, job_id: int) -> dict[str, Any]:
    """The user's status sync, answered by the owning node: reconcile one job now and, if
    its container ended, judge it right here instead of waiting for the metrics queue."""
    from workers.completion import complete_job

    with ctx.db() as session:
        row = session.execute(
            select(Job, Model.uuid).join(Model, Model.id == Job.model_id).where(Job.id == job_id)
        ).one_or_none()
        if row is not None:
            session.expunge_all()
    if row is None:
        return {"jobId": job_id, "outcome": "no such job"}
    job, model_uuid = row
    if job.node != ctx.node.node:
        return {"jobId": job_id, "outcome": f"job is on node {job.node}"}
    if job.container_phase.holds_container:
        state = ctx.runtime.inspect(ctx.container_of(job.id, job.container_name))
        outcome = reconcile_job(ctx, job, str(model_uuid), state, startup=False)
    else:
        outcome = "container gone"
    verdict = complete_job(ctx.db, ctx.settings, ctx.publisher, job_id)
    return {"jobId": job_id, "node": ctx.node.node, "outcome": outcome, "verdict": verdict}


def _track_progress(ctx: WorkerContext, job: Job, model_uuid: str) -> None:
    if job.type.value != "TRAIN":
        return
    folder = layout.train_dir(jobfiles.job_root(ctx.settings), model_uuid)
    progress = outputs.read_progress(folder)
    if progress is not None:
        record_progress(ctx.db, job.id, *progress)
    try:
        from app.metrics import ingest_live
    except ImportError:  # metrics package not installed in this build
        return
    try:
        ingest_live(ctx.db, job.model_id, job.id, folder)
    except Exception as exc:  # live curves are best effort; the final ingest is exact
        log.warning("live metrics of job %s: %s", job.id, exc)


def _runtime_silent(
    ctx: WorkerContext, jobs: list[tuple[Job, str]], reason: str, startup: bool
) -> None:
    """The runtime does not answer, so a claimed job's container may or may not exist: its
    claim can be neither released nor confirmed. Each backoff counts one more launch attempt
    of such a job; after the last allowed one it ends `LAUNCH_FAILED`. Its container (if any)
    and GPU lease are released by the reconcile once the runtime answers again."""
    now = utcnow()
    bounds = ctx.settings.bounds
    for job, _model_uuid in jobs:
        if (
            job.status is not JobStatus.QUEUED
            or job.container_phase.end_recorded
            or job.id in ctx.launching
            or not (startup or _claim_lost(ctx, job))
            or not bounds.due(job.launch_attempts, job.last_attempt_dttm, now)
        ):
            continue
        attempts = container_writes.count_launch_attempt(ctx.db, job.id, reason)
        log.warning("job %s: launch attempt %s of %s lost: %s", job.id, attempts,
                    bounds.max_attempts, reason)  # fmt: skip
        if attempts >= bounds.max_attempts:
            record_observation(ctx.db, ctx.publisher, job.id, gave_up(LAUNCH_FAILED, reason))


def _claim_lost(ctx: WorkerContext, job: Job) -> bool:
    claimed = job.claimed_dttm
    bound = timedelta(seconds=ctx.settings.bounds.claim_lost_after_s)
    return claimed is None or as_utc(claimed) < utcnow() - bound


def _remove_orphan(ctx: WorkerContext, name: str, state: ContainerState) -> None:
    """A labelled container no live job of this node wants (its job ended and was marked
    gone, moved, or never existed): stop it and remove it."""
    job_id = state.labels.get(LABEL_JOB_ID, "")
    log.warning("removing orphan container %s (job %s)", name, job_id or "?")
    ctx.runtime.stop(name, ctx.node.stop_grace_s)
    ctx.runtime.remove(name)


# --- the cluster-wide sweep ----------------------------------------------------------------


@contextmanager
def sweep_lock(engine: Engine) -> Iterator[bool]:
    """True for the one process that holds the sweep's advisory lock (SQLite: always)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    # Autocommit: the lock belongs to the session, and a connection held open in a
    # transaction for the whole sweep would count as idle in it (and be ended by PostgreSQL
    # after DB_IDLE_IN_TRANSACTION_TIMEOUT_S on a worker engine).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": SWEEP_LOCK_KEY}))
        try:
            yield held
        finally:
            if held:
                conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": SWEEP_LOCK_KEY})


def sweep(ctx: WorkerContext) -> dict[str, int] | None:
    """One pass; None when another process holds the lock and this one did nothing."""
    with sweep_lock(ctx.engine) as held:
        if not held:
            return None
        return {
            "outbox published": publish_pending(
                ctx.db, ctx.publisher, bounds=ctx.settings.bounds
            ),
            "queued re-published": republish_queued(ctx, older_than_s=ctx.node.requeue_after_s),
            "completions re-published": _republish_unjudged(ctx),
            "jobs of lost nodes ended": end_jobs_of_lost_nodes(ctx),
            "containers of gone nodes presumed gone": presume_gone_nodes_containers_gone(ctx),
            "webhook deliveries re-published": webhooks.publish_due(ctx.db, ctx.publisher),
        }


def _republish_unjudged(ctx: WorkerContext) -> int:
    """`complete_job` again for containers that ended but were never judged: a lost message
    after JUDGE_AFTER_S, a failed try after its backoff. complete_job counts the tries and
    ends the job with COMPLETION_FAILED after the last allowed one, so this stops too."""
    now = utcnow()
    lost = now - timedelta(seconds=JUDGE_AFTER_S)
    with ctx.db() as session:
        rows = session.execute(
            select(
                Job.id, Job.container_ended_dttm, Job.completion_attempts, Job.last_attempt_dttm
            ).where(
                Job.status_cd.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                Job.container_ended_dttm.is_not(None),
            )
        ).all()
    due = [
        job_id
        for job_id, ended, tries, last_try in rows
        if ended is not None
        and (as_utc(ended) < lost if not tries else ctx.settings.bounds.due(tries, last_try, now))
    ]
    for job_id in due:
        ctx.publisher.publish(
            messaging.COMPLETE_JOB,
            messaging.QUEUE_METRICS,
            {"job_id": job_id},
            f"rejudge-{job_id}-{uuid.uuid4().hex[:8]}",
        )
    return len(due)
