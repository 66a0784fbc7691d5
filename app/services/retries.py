"""Automatic retry after an ending (issue 14, item 1; the rules in app/domain/retry.py).

Called from the one path of a worker's report (app/services/observations.py) right after an
ending was written, in the same transaction with the model row locked: the new attempt is
created through `status_writes.apply` — as a user's resume or restart creates one — and its
launch is queued in the outbox of that same commit. So an ending is retried exactly once (a
repeated report is rejected before it gets here), and the launch keeps its priority, the
capacity rules and "one live container per model" (it waits for the old one to be gone).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import retry_thrash_guard
from app.db.models import Job, Model
from app.domain.retry import NoRetry, cause_of, parse_retry_policy, retry_decision
from app.domain.states import JobStatus, JobType
from app.domain.timefmt import as_utc, utcnow
from app.domain.transitions import JobObservation, Rejected, RetryRequest
from app.services.status_writes import StatusWrite, apply


def retry_after_ending(
    session: Session, model: Model, job: Job, ending: JobObservation
) -> StatusWrite | None:
    """Note the ending's cause on the job and, when the model's policy covers it and the run
    has budget left, start the next attempt. Returns that write, or None."""
    if job.type is not JobType.TRAIN or job.status not in (JobStatus.FAILED, JobStatus.STOPPED):
        return None
    cause = cause_of(ending.error)
    job.end_cause = cause
    policy = parse_retry_policy(model.retry_policy)
    if policy is None or cause is None:
        return None
    decision = retry_decision(
        policy,
        retries_done=job.retry_number or 0,
        cause=cause,
        now=utcnow(),
        earlier_failures=_earlier_endings(session, job),
        guard=retry_thrash_guard(),
    )
    if isinstance(decision, NoRetry):
        job.retry_note = decision.note
        return None
    request = RetryRequest(model.checkpoint_epoch, decision.sub_status, priority=job.priority)
    write = apply(session, model, request)
    if isinstance(write.decision, Rejected) or write.job is None:
        job.retry_note = f"not retried: {getattr(write.decision, 'message', 'refused')}"
        return None
    write.job.retry_number = decision.number
    how = f"from epoch {request.resume_from}" if request.resume_from else "from scratch"
    job.retry_note = f"retried as attempt {write.job.attempt} ({how})"
    session.flush()
    return write


def _earlier_endings(session: Session, job: Job) -> list[datetime]:
    """When the earlier attempts of `job`'s run ended: the run began with the latest training
    job a user started (retry_number NULL) at or before this one."""
    training = (Job.model_id == job.model_id, Job.job_type == JobType.TRAIN.value)
    start = session.scalar(
        select(func.max(Job.id)).where(*training, Job.retry_number.is_(None), Job.id <= job.id)
    )
    ended = session.scalars(
        select(Job.finished_dttm).where(
            *training, Job.id >= (start or 0), Job.id < job.id, Job.finished_dttm.is_not(None)
        )
    )
    return [as_utc(when) for when in ended if when is not None]
