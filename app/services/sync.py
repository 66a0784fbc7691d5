"""Status sync (SPEC §4 `POST /api/train/status/{uuid}`): ask the node that owns the model's
live job to reconcile it with its container and outputs."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import messaging
from app.db.models import Model, Node
from app.domain.timefmt import as_utc, utcnow
from app.services.publisher import BrokerUnavailable, Publisher, RemoteTaskFailed
from app.services.status_writes import live_job

log = logging.getLogger(__name__)

# The API thread waits this long at most for the node's answer; with the broker's own bound
# (PUBLISH_TIMEOUT_S, for the send and the last read) a sync never takes longer than
# SYNC_TIMEOUT_S + 2 * PUBLISH_TIMEOUT_S, also when Redis is frozen or gone (while
# PUBLISH_TIMEOUT_S <= SYNC_TIMEOUT_S; above it, 3 * PUBLISH_TIMEOUT_S).
SYNC_TIMEOUT_S = 3.0
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
    except BrokerUnavailable as exc:
        # The answer is the model as the database has it; the broker's address stays in the log.
        log.warning("status sync of job %s: broker unavailable: %s", job.id, exc)
        return {
            **base,
            "answered": False,
            "reason": "broker unavailable; the model is as the database has it",
        }
    except RemoteTaskFailed as exc:
        return {**base, "answered": False, "reason": f"node {job.node} failed to sync: {exc}"}
    return {**base, "answered": True, "result": answer}


def _age_s(moment: datetime) -> float:
    return (utcnow() - as_utc(moment)).total_seconds()
