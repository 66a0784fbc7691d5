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
from app.services.retries import retry_after_ending
from app.services.status_writes import StatusWrite, apply, lock_job

#: Reads the locked rows and says what the worker observed, or why there is nothing to apply
#: (a str). It may write what must commit together with the transition (the metric ingest).
Look = Callable[[Session, Model, Job], JobObservation | str]


def observe(
    factory: sessionmaker[Session], publisher: Publisher | None, job_id: int, look: Look
) -> StatusWrite | str:
    """The one path of a worker's report on a job: lock the job's model row, `look` at the
    rows, apply what it observed, commit, then publish what the transition queued. Returns
    the write, or why nothing was applied (no such job, or `look`'s answer)."""
    with transaction(factory) as session:
        locked = lock_job(session, job_id)
        if locked is None:
            return f"job {job_id} does not exist"
        model, job = locked
        observed = look(session, model, job)
        if isinstance(observed, str):
            return observed
        write = apply(session, model, observed, observed=job)
        if write.accepted and job.status.is_terminal:
            # The one place an ending may lead to an automatic retry (app/services/retries.py).
            retry = retry_after_ending(session, model, job, observed)
            if retry is not None:
                write.outbox_ids += retry.outbox_ids
    if publisher is not None and write.outbox_ids:
        publish_pending(factory, publisher, only_ids=write.outbox_ids)
    return write


def record_observation(
    factory: sessionmaker[Session],
    publisher: Publisher | None,
    job_id: int,
    observation: JobObservation,
) -> StatusWrite:
    """Apply a worker's observation of one job, exactly once.

    A repeat (the job already ended, a redelivered message, a second sweep) is rejected by
    the domain and writes nothing, so callers may report the same end as often as they like.
    """
    write = observe(factory, publisher, job_id, lambda _session, _model, _job: observation)
    if isinstance(write, str):
        raise LookupError(f"no job {job_id}")
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
