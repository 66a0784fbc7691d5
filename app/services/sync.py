"""Status sync (SPEC §4 `POST /api/train/status/{uuid}`): ask the node that owns the model's
live job to reconcile it with its container and outputs."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app import messaging
from app.db.models import Model
from app.domain.states import JobType
from app.services.publisher import Publisher
from app.services.status_writes import active_job


def request_sync(session: Session, publisher: Publisher, model: Model) -> dict[str, Any]:
    """Publish a sync task to the owning node; say plainly what happened.

    A sync changes no state by itself: the node's reconcile does, through the one
    status-write path. A job not yet claimed by any node has nothing to reconcile.
    """
    job = active_job(session, model, JobType.TRAIN) or active_job(session, model, JobType.EVAL)
    if job is None:
        return {"requested": False, "reason": "no live job"}
    if job.node is None:
        return {"requested": False, "reason": f"job {job.id} is queued and not on a node yet"}
    try:
        publisher.publish(
            messaging.SYNC_JOB,
            messaging.node_queue(job.node),
            {"job_id": job.id},
            f"sync-{job.id}-{uuid.uuid4().hex[:8]}",
        )
    except Exception as exc:
        return {"requested": False, "reason": f"broker unavailable: {exc}", "node": job.node}
    return {"requested": True, "node": job.node, "jobId": job.id}
