"""Commit, then publish: the transactional outbox and its relay."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

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
) -> int:
    """Publish unsent outbox rows (all, or `only_ids`); return how many were sent.

    Rows are locked with SKIP LOCKED so two relays never send the same row at once. On the
    first failure the relay stops: the broker is likely down and the rest would fail too.
    """
    if only_ids is not None and not only_ids:
        return 0
    sent = 0
    with transaction(factory) as session:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.published_dttm.is_(None))
            .order_by(OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if only_ids is not None:
            query = query.where(OutboxMessage.id.in_(only_ids))
        for message in session.scalars(query):
            try:
                publisher.publish(
                    message.task_name, message.queue, message.payload, message_id(message)
                )
            except Exception as exc:
                message.attempts += 1
                message.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                log.warning("outbox %s not published, kept for the relay: %s", message.id, exc)
                break
            message.published_dttm = utcnow()
            message.attempts += 1
            sent += 1
    return sent


def pending_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.published_dttm.is_(None))
        )
        or 0
    )
