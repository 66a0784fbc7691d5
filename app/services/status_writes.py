"""The one status-write path.

Every change of `status_cd`, `step1_state`, `step2_state` or a job's status — a user's
command or a worker's observation — goes through `apply()` here: the caller has locked the
model row inside a transaction; `apply()` asks the domain, writes what it decided, and
records the tasks to publish in the outbox. The caller commits, then publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import messaging
from app.db.models import Job, Model, TestMetric, TrainMetric, ValidationMetric
from app.domain.containers import container_name
from app.domain.job_params import job_params
from app.domain.jobtext import storable_or_none
from app.domain.states import JOB_ACTIVE, JobStatus, JobType, StepState, derive_model_status
from app.domain.timefmt import utcnow
from app.domain.transitions import (
    STOPPING_COMMANDS,
    Accepted,
    Action,
    Command,
    CommandRequest,
    Decision,
    JobObservation,
    JobSnapshot,
    ModelSnapshot,
    NewJob,
    Rejected,
    RetryRequest,
    decide,
)
from app.services.images import missing_image
from app.services.outbox import enqueue
from app.services.queries import ModelRow, installation_id
from app.services.webhooks import record_status_change, states_before, status_change


@dataclass
class StatusWrite:
    """What `apply()` did: the decision, the job it created or changed, the outbox rows."""

    decision: Decision
    model: Model
    job: Job | None = None
    outbox_ids: list[int] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return isinstance(self.decision, Accepted)


def lock_model(session: Session, model_uuid: object) -> Model | None:
    """SELECT … FOR UPDATE the model row: concurrent writers on one model queue up here."""
    return session.scalars(
        select(Model).where(Model.uuid == model_uuid).with_for_update()
    ).one_or_none()


def lock_model_by_id(session: Session, model_id: int) -> Model | None:
    return session.scalars(
        select(Model).where(Model.id == model_id).with_for_update()
    ).one_or_none()


def lock_job(session: Session, job_id: int) -> tuple[Model, Job] | None:
    """A job and its model, the model row locked (the lock every status write takes), the
    job re-read under it. None when there is no such job."""
    model_id = session.scalar(select(Job.model_id).where(Job.id == job_id))
    if model_id is None:
        return None
    model = lock_model_by_id(session, model_id)
    job = session.get(Job, job_id, populate_existing=True)
    assert model is not None and job is not None  # jobs cascade with their model
    return model, job


def snapshot(model: ModelRow, image_missing: str | None = None) -> ModelSnapshot:
    """What `decide()` sees of a model (a `Model`, or a list row: serialize's allowedCommands
    come from the same snapshot the command is decided on)."""
    return ModelSnapshot(
        step1=StepState(model.step1_state),
        step2=StepState(model.step2_state),
        total_epoch=model.total_epoch,
        val_interval=model.val_interval,
        checkpoint_epoch=model.checkpoint_epoch,
        image_missing=image_missing,
        last_error=model.last_error,
    )


def live_job(session: Session, model: Model, job_type: JobType | None = None) -> Job | None:
    """The model's live (QUEUED or RUNNING) job, of one type or either; there is at most one:
    a new job is only created when the previous one of the model has ended."""
    query = select(Job).where(
        Job.model_id == model.id, Job.status_cd.in_([s.value for s in JOB_ACTIVE])
    )
    if job_type is not None:
        query = query.where(Job.job_type == job_type.value)
    return session.scalars(query.order_by(Job.id.desc()).limit(1)).one_or_none()


def _job_snapshot(model: Model, job: Job) -> JobSnapshot:
    return JobSnapshot(job.id, job.type, job.status, is_current=job.id == model.current_attempt_id)


def _job_for(session: Session, model: Model, action: Action, observed: Job | None) -> Job | None:
    if observed is not None:
        return observed
    if isinstance(action, CommandRequest) and action.command is Command.CANCEL:
        return live_job(session, model, JobType.TRAIN)
    if isinstance(action, CommandRequest) and action.command is Command.TEST_CANCEL:
        return live_job(session, model, JobType.EVAL)
    return None


def apply(
    session: Session, model: Model, action: Action, observed: Job | None = None
) -> StatusWrite:
    """Decide and write one transition. `model` must be locked by the caller's transaction."""
    job = _job_for(session, model, action, observed)
    missing = None
    if isinstance(action, CommandRequest) and action.command not in STOPPING_COMMANDS:
        missing = missing_image(session, model.image)  # a command that starts a container
    decision = decide(snapshot(model, missing), _job_snapshot(model, job) if job else None, action)
    if isinstance(decision, Rejected):
        return StatusWrite(decision, model, job)

    now = utcnow()
    times = _times(action, now)
    before = states_before(model, job)
    result = StatusWrite(decision, model, job)
    if decision.job_change is not None and job is not None:
        _change_job(job, decision, times)
    if decision.reset_training:
        _reset_training(session, model)
    if decision.new_job is not None:
        priority = action.priority if isinstance(action, CommandRequest | RetryRequest) else None
        result.job = _create_job(session, model, decision.new_job, now, priority)
    _write_model_states(model, decision, times)
    _write_retry_status(model, action, decision)
    session.flush()
    result.outbox_ids = _enqueue_follow_up(session, decision, result.job)
    # Webhooks: the event is written here, in this transaction, and delivered by a worker
    # after the commit (app/services/webhooks.py); no status write waits for a receiver.
    changed = job if decision.job_change is not None else None
    created = result.job if decision.new_job is not None else None
    change = status_change(model, before, action, changed, created)
    result.outbox_ids += record_status_change(session, model, change)
    return result


@dataclass(frozen=True)
class _Times:
    """The times a transition writes: the container's own when the observation carries them
    (SPEC §9, "Times measure what they name"), else the clock of the write."""

    now: datetime
    started_at: datetime | None  # the container's start, when known
    ended: datetime  # the container's end, or now


def _times(action: Action, now: datetime) -> _Times:
    if isinstance(action, JobObservation):
        return _Times(now, action.started_at, action.ended_at or now)
    return _Times(now, None, now)


def _change_job(job: Job, decision: Accepted, times: _Times) -> None:
    change = decision.job_change
    assert change is not None
    if job.status.is_terminal:  # the domain rejects this; a bug if it ever gets here
        raise RuntimeError(f"job {job.id} is {job.status_cd}; terminal states never change")
    job.status_cd = change.status.value
    if change.status is JobStatus.RUNNING:
        job.started_dttm = times.started_at or job.started_dttm or times.now
        return
    job.exit_code = change.exit_code
    job.error_message = storable_or_none(change.error_message)  # may quote the job's log
    job.finished_dttm = times.ended
    # The end may be judged before the start was observed (a fast container): the
    # container's start, when known, fills the gap.
    job.started_dttm = times.started_at or job.started_dttm


def _write_model_states(model: Model, decision: Accepted, times: _Times) -> None:
    model.step1_state = decision.step1.value
    model.step2_state = decision.step2.value
    model.status_cd = derive_model_status(decision.step1, decision.step2).value
    if not decision.keeps_last_error:
        last_error = decision.last_error
        model.last_error = storable_or_none(last_error) if isinstance(last_error, str) else None
    if decision.started_step == 1:
        model.step1_strt_dttm = times.started_at or model.step1_strt_dttm or times.now
    elif decision.started_step == 2:
        model.step2_strt_dttm = times.started_at or model.step2_strt_dttm or times.now
    if decision.ended_step is not None:
        stamp_step_times(model, decision.ended_step, times.started_at, times.ended)


def _write_retry_status(model: Model, action: Action, decision: Accepted) -> None:
    """"retrying (2/3) after NODE_LOST" from the retry's decision while its training is in
    progress; gone once the training ends (or is canceled)."""
    if isinstance(action, RetryRequest):
        model.retry_status = action.sub_status
    elif decision.step1 is not StepState.IN_PROGRESS:
        model.retry_status = None


def stamp_step_times(
    model: Model, step: int, started_at: datetime | None, ended_at: datetime
) -> None:
    """A step's attempt ended at `ended_at`; its start is the container's (`started_at`) when
    known — also when the end was judged before the start was observed."""
    if step == 1:
        model.step1_strt_dttm = started_at or model.step1_strt_dttm
        model.step1_end_dttm = ended_at
    else:
        model.step2_strt_dttm = started_at or model.step2_strt_dttm
        model.step2_end_dttm = ended_at


def _reset_training(session: Session, model: Model) -> None:
    """Restart trains from scratch: nothing of the earlier attempt may reach its metrics."""
    model.best_epoch = None
    model.checkpoint_epoch = None
    model.epochs_done = None
    model.step1_metric_save_yn = False
    model.step2_metric_save_yn = False
    model.step2_strt_dttm = None
    model.step2_end_dttm = None
    for table in (TrainMetric, ValidationMetric, TestMetric):
        session.execute(delete(table).where(table.model_id == model.id))


def _create_job(
    session: Session, model: Model, new: NewJob, now: datetime, priority: int | None
) -> Job:
    last_attempt = session.scalar(select(func.max(Job.attempt)).where(Job.model_id == model.id))
    params = job_params(model.params, new)
    job = Job(
        model_id=model.id,
        job_type=new.job_type.value,
        attempt=(last_attempt or 0) + 1,
        status_cd=JobStatus.QUEUED.value,
        params=params,
        image=model.image,
        resources=dict(model.resources),
        priority=model.priority if priority is None else priority,
        queued_dttm=now,
    )
    session.add(job)
    session.flush()
    job.container_name = container_name(installation_id(session), job.id)
    model.current_attempt_id = job.id
    # A new attempt of a step has its own start and end times.
    if new.job_type is JobType.TRAIN:
        model.step1_strt_dttm = model.step1_end_dttm = None
    else:
        model.step2_strt_dttm = model.step2_end_dttm = None
    return job


def _enqueue_follow_up(session: Session, decision: Accepted, job: Job | None) -> list[int]:
    ids: list[int] = []
    if decision.new_job is not None and job is not None:
        queue = messaging.launch_queue(job.resources)
        ids.append(enqueue(session, messaging.LAUNCH_JOB, queue, {"job_id": job.id}).id)
    if decision.stop_container and job is not None and job.node:
        # A job never claimed by a node has no container; its launch will see CANCELED.
        queue = messaging.node_queue(job.node)
        ids.append(enqueue(session, messaging.STOP_JOB, queue, {"job_id": job.id}).id)
    return ids
