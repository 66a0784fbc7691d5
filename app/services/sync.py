"""Status sync (SPEC §4 `POST /api/train/status/{uuid}`): ask the node that owns the model's
live job to reconcile it with its container and outputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import messaging
from app.db.models import Model, Node
from app.domain.timefmt import as_utc, utcnow
from app.services.publisher import Publisher
from app.services.status_writes import live_job

SYNC_TIMEOUT_S = 3.0  # the API worker waits this long at most for the node's answer
# A node whose last heartbeat is older than this is not asked at all: waiting on a dead node
# would hold an API worker for SYNC_TIMEOUT_S per click. (Nodes beat every few seconds.)
SILENT_AFTER_S = 30.0


def request_sync(
    session: Session, publisher: Publisher, model: Model, timeout_s: float = SYNC_TIMEOUT_S
) -> dict[str, Any]:
    """Ask the owning node to reconcile the model's live job now and wait a few seconds for
    its answer; say plainly what happened. The node's reconcile writes states through the
    one status-write path; this function writes nothing.
    """
    job = live_job(session, model)
    if job is None:
        return {"requested": False, "reason": "no live job"}
    if job.node is None:
        return {"requested": False, "reason": f"job {job.id} is queued and not on a node yet"}
    last_seen = session.scalar(select(Node.last_seen_dttm).where(Node.name == job.node))
    if last_seen is None or _age_s(last_seen) > SILENT_AFTER_S:
        silence = (
            "has never sent a heartbeat"
            if last_seen is None
            else f"has sent no heartbeat since {last_seen:%Y-%m-%d %H:%M:%S} UTC"
        )
        return {
            "requested": False,
            "node": job.node,
            "jobId": job.id,
            "answered": False,
            "reason": f"node {job.node} {silence}; not waiting for it",
        }
    base = {"requested": True, "node": job.node, "jobId": job.id}
    try:
        answer = publisher.request(
            messaging.SYNC_JOB, messaging.node_queue(job.node), {"job_id": job.id}, timeout_s
        )
    except TimeoutError:
        return {
            **base,
            "answered": False,
            "reason": f"node {job.node} did not answer within {timeout_s:g} s",
        }
    except Exception as exc:
        return {**base, "answered": False, "reason": f"broker unavailable: {exc}"}
    return {**base, "answered": True, "result": answer}


def _age_s(moment: datetime) -> float:
    return (utcnow() - as_utc(moment)).total_seconds()
