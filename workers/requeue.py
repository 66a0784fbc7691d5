"""Re-publish launches for QUEUED jobs that no node holds. Broker messages are hints: one may
be lost (Redis restarted empty) or consumed by a node that could not take the job yet (no
free GPU, the model's previous container still stopping). The claim makes extras harmless.

Bounded (Settings.bounds): every claim counts one launch attempt in the job row. A job whose
last claim ended without a container (the runtime did not answer, the launch crashed) is
re-published only once its backoff has passed, and the claim after the last allowed one ends
it as `LAUNCH_FAILED: <last error>` (workers/launcher.py). Jobs that merely wait for a GPU, for
room on a node (NODE_MAX_JOBS, NODE_MEMORY_MB: workers/capacity.py) or for their model's
previous container are never claimed, so they are not counted.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import messaging
from app.db.models import Job
from app.db.session import transaction
from app.domain.states import JobStatus
from app.domain.timefmt import utcnow
from workers import capacity
from workers.context import WorkerContext
from workers.drain import is_draining
from workers.gpus import release_gpus

log = logging.getLogger(__name__)


def republish_queued(
    ctx: WorkerContext,
    model_id: int | None = None,
    gpu_only: bool = False,
    older_than_s: float = 0.0,
) -> int:
    """Send a launch for each QUEUED job no node holds, oldest first (queued time, then id).
    `model_id`: only that model's (its previous container is gone, so it may start); a slot
    on this node is free then too, so the oldest jobs waiting for capacity are woken as well
    (`wake_waiting`)."""
    now = utcnow()
    with ctx.db() as session:
        query = select(
            Job.id, Job.resources, Job.launch_attempts, Job.last_attempt_dttm
        ).where(Job.status_cd == JobStatus.QUEUED.value, Job.node.is_(None))
        if model_id is not None:
            query = query.where(Job.model_id == model_id)
        if older_than_s:
            query = query.where(Job.queued_dttm < now - timedelta(seconds=older_than_s))
        rows = session.execute(query.order_by(Job.queued_dttm, Job.id)).all()
    sent = 0
    for job_id, resources, attempts, last_attempt in rows:
        if not ctx.settings.bounds.due(attempts, last_attempt, now):
            continue  # its last claim failed moments ago: back off
        queue = messaging.launch_queue(resources or {})
        if gpu_only and queue != messaging.QUEUE_LAUNCH_GPU:
            continue
        if not send_launch(ctx, job_id, queue, "requeue"):
            break  # the next sweep tries again
        sent += 1
    if model_id is not None:
        sent += wake_waiting(ctx)
    return sent


def wake_waiting(ctx: WorkerContext) -> int:
    """A slot on this node is free: send the oldest waiting jobs that fit in what is free now
    to this node's own queue (their launch messages were consumed while it was full; another
    node may not have room). The claim checks again under the node's lock; this is a hint."""
    with ctx.db() as session:
        if is_draining(session, ctx.node):
            return 0
        load = capacity.load_of(session, ctx.node)
        waiting = capacity.waiting_jobs(
            session, ctx.node, ctx.settings.bounds, load, limit=ctx.node.max_jobs
        )
    sent = 0
    for job in waiting:
        if not send_launch(ctx, job.job_id, messaging.node_queue(ctx.node.node), "wake"):
            break
        sent += 1
    return sent


def send_launch(ctx: WorkerContext, job_id: int, queue: str, why: str) -> bool:
    """One more launch message for a job (claims make extras harmless); False when the broker
    refused it (the sweep sends it again later)."""
    try:
        message_id = f"{why}-{job_id}-{uuid.uuid4().hex[:8]}"
        ctx.publisher.publish(messaging.LAUNCH_JOB, queue, {"job_id": job_id}, message_id)
    except Exception as exc:
        log.warning("could not re-publish job %s: %s", job_id, exc)
        return False
    return True


def release_claim(db: sessionmaker[Session], job_id: int, node: str) -> bool:
    """Give back a claim whose launch is over without a container: the job is unclaimed again
    (any node may take it) and its GPUs are free. Only a job still QUEUED, still this node's
    and with no container end recorded; returns whether it was released."""
    with transaction(db) as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()
        if (
            job is None
            or job.status is not JobStatus.QUEUED
            or job.node != node
            or job.container_ended_dttm is not None
        ):
            return False
        job.node = None
        job.claimed_dttm = None
        job.gpu_ids = None
        release_gpus(session, job_id)
    return True


def record_attempt_error(db: sessionmaker[Session], job_id: int, reason: str) -> None:
    """Why the job's last launch or completion attempt failed (the give-up message quotes it)
    and when: the backoff before the next attempt counts from here."""
    with transaction(db) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(last_attempt_error=reason, last_attempt_dttm=utcnow())
        )


def count_launch_attempt(db: sessionmaker[Session], job_id: int, reason: str) -> int:
    """One more failed launch attempt of a job that stays claimed (its node's runtime does
    not answer, so whether a container exists is unknown). Returns the count."""
    with transaction(db) as session:
        job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one()
        job.launch_attempts += 1
        job.last_attempt_error = reason
        job.last_attempt_dttm = utcnow()
        return job.launch_attempts
