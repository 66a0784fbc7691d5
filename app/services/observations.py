"""What workers report about their jobs, written through the one status-write path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, Model
from app.db.session import transaction
from app.domain.transitions import JobObservation
from app.services.outbox import publish_pending
from app.services.publisher import Publisher
from app.services.status_writes import StatusWrite, apply, lock_job

#: Extra writes that must commit together with the transition (e.g. the metric ingest).
AlsoWrite = Callable[[Session, Model, Job], None]


def record_observation(
    factory: sessionmaker[Session],
    publisher: Publisher | None,
    job_id: int,
    observation: JobObservation,
    also: AlsoWrite | None = None,
) -> StatusWrite:
    """Apply a worker's observation of one job, exactly once.

    A repeat (the job already ended, a redelivered message, a second sweep) is rejected by
    the domain and writes nothing, so callers may report the same end as often as they like.
    `also` runs in the same transaction only when the transition is accepted.
    """
    with transaction(factory) as session:
        locked = lock_job(session, job_id)
        if locked is None:
            raise LookupError(f"no job {job_id}")
        model, job = locked
        write = apply(session, model, observation, observed=job)
        if write.accepted and also is not None:
            also(session, model, job)
    if publisher is not None and write.outbox_ids:
        publish_pending(factory, publisher, only_ids=write.outbox_ids)
    return write


def record_progress(
    factory: sessionmaker[Session], job_id: int, epochs_done: int, checkpoint_epoch: int | None
) -> bool:
    """Live progress of a TRAIN job; ignored unless it is the model's current attempt.

    Progress is not a state: it changes no status and needs no row lock beyond the update.
    """
    with transaction(factory) as session:
        result = session.execute(
            update(Model)
            .where(
                Model.current_attempt_id == job_id,
                # Polled every few seconds: write only when something moved.
                Model.epochs_done.is_distinct_from(epochs_done)
                | Model.checkpoint_epoch.is_distinct_from(checkpoint_epoch),
            )
            .values(epochs_done=epochs_done, checkpoint_epoch=checkpoint_epoch)
            .execution_options(synchronize_session=False)
        )
        return bool(cast(CursorResult[Any], result).rowcount)
