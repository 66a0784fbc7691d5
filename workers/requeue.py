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

from sqlalchemy import select

from app import messaging
from app.db.models import Job
from app.domain.states import JobStatus
from app.domain.timefmt import utcnow
from workers import capacity
from workers.context import WorkerContext

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
    if ctx.node.draining:
        return 0
    with ctx.db() as session:
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

