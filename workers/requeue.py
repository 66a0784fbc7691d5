"""Re-publish launches for QUEUED jobs that no node holds. Broker messages are hints: one may
be lost (Redis restarted empty) or consumed by a node that could not take the job yet (no
free GPU, the model's previous container still stopping). The claim makes extras harmless."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select

from app import messaging
from app.db.models import Job
from app.domain.states import JobStatus
from app.domain.timefmt import utcnow
from workers.context import WorkerContext

log = logging.getLogger(__name__)


def republish_queued(
    ctx: WorkerContext,
    model_id: int | None = None,
    gpu_only: bool = False,
    older_than_s: float = 0.0,
) -> int:
    with ctx.db() as session:
        query = select(Job.id, Job.resources).where(
            Job.status_cd == JobStatus.QUEUED.value, Job.node.is_(None)
        )
        if model_id is not None:
            query = query.where(Job.model_id == model_id)
        if older_than_s:
            query = query.where(Job.queued_dttm < utcnow() - timedelta(seconds=older_than_s))
        rows = session.execute(query.order_by(Job.id)).all()
    sent = 0
    for job_id, resources in rows:
        queue = messaging.launch_queue(resources or {})
        if gpu_only and queue != messaging.QUEUE_LAUNCH_GPU:
            continue
        try:
            ctx.publisher.publish(
                messaging.LAUNCH_JOB,
                queue,
                {"job_id": job_id},
                f"requeue-{job_id}-{uuid.uuid4().hex[:8]}",
            )
            sent += 1
        except Exception as exc:  # the next sweep tries again
            log.warning("could not re-publish job %s: %s", job_id, exc)
            break
    return sent
