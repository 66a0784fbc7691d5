"""Commit, then publish: the transactional outbox and its relay."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Bounds
from app.db.models import OutboxMessage
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.services.publisher import Publisher

log = logging.getLogger(__name__)


def enqueue(session: Session, task_name: str, queue: str, payload: dict[str, Any]) -> OutboxMessage:
    """Record a task to publish once the caller's transaction commits."""
    message = OutboxMessage(task_name=task_name, queue=queue, payload=payload)
    session.add(message)
    session.flush()
    return message


def message_id(message: OutboxMessage) -> str:
    """Stable across re-publishes, so a duplicate is recognisable in logs and Flower."""
    return f"outbox-{message.id}"


def publish_pending(
    factory: sessionmaker[Session],
    publisher: Publisher,
    only_ids: list[int] | None = None,
    limit: int = 200,
    bounds: Bounds | None = None,
) -> int:
    """Publish unsent outbox rows (all, or `only_ids`); return how many were sent.

    Rows are locked with SKIP LOCKED so two relays never send the same row at once. On the
    first failure the relay stops: the broker is likely down and the rest would fail too.

    With `bounds` (the workers' periodic relay) a row that failed waits its backoff before
    the next try and is given up after the last allowed one, loudly: what it asked for is
    re-derived from the job rows by the sweep and the nodes' reconcile (a launch for a QUEUED
    job, a judgement for an ended container, a stop for a canceled job's container), so a
    broker outage costs retries at a bounded rate, never a job. Without `bounds` (right after
    a commit, `trainyard relay`) every unsent row is tried now.
    """
    if only_ids is not None and not only_ids:
        return 0
    sent = 0
    now = utcnow()
    with transaction(factory) as session:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.published_dttm.is_(None), OutboxMessage.given_up_dttm.is_(None))
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if only_ids is not None:
            query = query.where(OutboxMessage.id.in_(only_ids))
        if bounds is not None:
            due = OutboxMessage.next_attempt_dttm
            query = query.where(or_(due.is_(None), due <= now))
        for message in session.scalars(query):
            message.attempts += 1
            try:
                publisher.publish(
                    message.task_name, message.queue, message.payload, message_id(message)
                )
            except Exception as exc:
                message.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                _after_failure(message, bounds, now)
                break
            message.published_dttm = utcnow()
            sent += 1
    return sent


def _after_failure(message: OutboxMessage, bounds: Bounds | None, now: datetime) -> None:
    if bounds is None:
        log.warning("outbox %s not published, kept for the relay: %s", message.id,
                    message.last_error)  # fmt: skip
        return
    if message.attempts >= bounds.max_attempts:
        message.given_up_dttm = now
        log.error(
            "outbox %s (%s %s) given up after %s tries: %s; the sweep re-derives it",
            message.id, message.task_name, message.payload, message.attempts, message.last_error,
        )  # fmt: skip
        return
    message.next_attempt_dttm = now + bounds.backoff(message.attempts)
    log.warning("outbox %s not published (try %s), next try after %s: %s", message.id,
                message.attempts, message.next_attempt_dttm, message.last_error)  # fmt: skip


def pending_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.published_dttm.is_(None), OutboxMessage.given_up_dttm.is_(None))
        )
        or 0
    )
