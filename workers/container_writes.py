"""The one writer of a job's container columns, as app/services/status_writes.py is of status.

The phase they encode and its legal moves are app/domain/container_phases.py: `node`,
`claimed_dttm` and `gpu_ids` (with the GPU leases) for the claim, `container_ended_dttm` and
how the container ended (`container_exit_code`, `container_missing`, `oom_killed`,
`log_tail`, `node_lost`, `launch_error`) for its end, `container_gone_dttm` for its removal,
and the bounded retry counters of the claim and the judgement (`launch_attempts`,
`completion_attempts`, `last_attempt_dttm`, `last_attempt_error`, Settings.bounds) change
here and nowhere else (tests/domain/test_only_container_writes.py). A move the domain
refuses is a bug: it raises.

Locks: a function given a `job` writes a row its caller's transaction has locked (the claim
holds the model row lock of the status-write path; the lost-node sweep locks the rows it
ends, `lock_job_row`); a function given `db` and a job id runs its own transaction and locks
the job row itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app import messaging
from app.db.models import Job
from app.db.session import transaction
from app.domain.container_phases import ContainerMove, ContainerPhase, after
from app.domain.jobtext import storable_or_none
from app.domain.states import JobStatus
from app.domain.timefmt import utcnow
from app.services.outbox import enqueue
from app.services.queries import in_phase
from workers.gpus import release_gpus, take_gpus


def _move(job: Job, move: ContainerMove) -> None:
    after(job.container_phase, move)  # raises IllegalMove: the caller's bug, never a write


def lock_job_row(session: Session, job_id: int) -> Job | None:
    """SELECT … FOR UPDATE the job row: the lock of every container write not made under the
    model row lock."""
    return session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()


# --- the claim -----------------------------------------------------------------------------


def claim(session: Session, job: Job, node: str, node_gpus: tuple[int, ...], gpus: int) -> bool:
    """`node` takes the job to launch it, with `gpus` of its free GPUs; one more launch
    attempt. False (nothing written) when not enough GPUs are free. The job row is locked."""
    _move(job, ContainerMove.CLAIM)
    gpu_ids: list[int] = []
    if gpus:
        taken = take_gpus(session, node, node_gpus, gpus, job.id)
        if taken is None:
            return False
        gpu_ids = taken
    job.node = node
    job.claimed_dttm = job.last_attempt_dttm = utcnow()
    job.gpu_ids = gpu_ids
    job.launch_attempts += 1
    return True


def release_claim(db: sessionmaker[Session], job_id: int, node: str) -> bool:
    """Give back a claim whose launch is over without a container: the job is unclaimed again
    (any node may take it) and its GPUs are free. Only a job still QUEUED, still this node's
    and with no container end recorded; returns whether it was released."""
    with transaction(db) as session:
        job = lock_job_row(session, job_id)
        if (
            job is None
            or job.status is not JobStatus.QUEUED
            or job.node != node
            or job.container_phase is not ContainerPhase.CLAIMED
        ):
            return False
        _move(job, ContainerMove.RELEASE)
        job.node = None
        job.claimed_dttm = None
        job.gpu_ids = None
        release_gpus(session, job_id)
    return True


def record_attempt_error(db: sessionmaker[Session], job_id: int, reason: str) -> None:
    """Why the job's last launch or completion attempt failed (the give-up message quotes it)
    and when: the backoff before the next attempt counts from here."""
    with transaction(db) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(last_attempt_error=reason, last_attempt_dttm=utcnow())
        )


def count_launch_attempt(db: sessionmaker[Session], job_id: int, reason: str) -> int:
    """One more failed launch attempt of a job that stays claimed (its node's runtime does
    not answer, so whether a container exists is unknown). Returns the count."""
    with transaction(db) as session:
        job = lock_job_row(session, job_id)
        assert job is not None, f"job {job_id} vanished (jobs are never deleted)"
        job.launch_attempts += 1
        job.last_attempt_error = reason
        job.last_attempt_dttm = utcnow()
        return job.launch_attempts


# --- the end, before the container is removed ----------------------------------------------


def record_end(
    session: Session,
    job: Job,
    *,
    ended_at: datetime,
    exit_code: int | None,
    missing: bool,
    oom_killed: bool,
    log_tail: str | None,
    node_lost: bool = False,
    started_at: datetime | None = None,
    launch_error: str | None = None,
) -> list[int]:
    """Write what is known of how the job's container ended and queue its judgement
    (`complete_job`) in the same commit. Returns the outbox ids. The job row is locked.

    A job already ended (a cancel, applied by the API before its container stopped) is
    queued too: its judgement is done, but the epochs its container finished meanwhile are
    ingested then (SPEC §9, "Every ending keeps its data")."""
    _move(job, ContainerMove.RECORD_END)
    job.container_ended_dttm = ended_at
    # The container's own start (the runtime's), kept for the judgement: the start
    # observation may have lost the race with the end, or be the launcher's clock.
    job.started_dttm = started_at or job.started_dttm
    job.container_exit_code = exit_code
    job.container_missing = missing
    job.oom_killed = oom_killed
    job.log_tail = storable_or_none(log_tail)  # a job's log may hold NUL or invalid UTF-8
    # Why no container ran, in the launcher's words: judged instead of the exit code.
    job.launch_error = storable_or_none(launch_error)
    if node_lost:
        job.node_lost = True
    message = enqueue(session, messaging.COMPLETE_JOB, messaging.QUEUE_METRICS, {"job_id": job.id})
    return [message.id]


def record_nodes_lost(
    session: Session, nodes: set[str], note: str
) -> tuple[list[Job], list[int]]:
    """End, as missing, the containers of these silent nodes whose end nobody recorded: their
    outputs will judge them. Rows another transaction holds are left to the next sweep.
    Returns the jobs ended and the outbox ids of their judgements."""
    jobs = session.scalars(
        select(Job)
        .where(Job.node.in_(nodes), in_phase(ContainerPhase.CLAIMED))
        .with_for_update(skip_locked=True)
    ).all()
    outbox_ids: list[int] = []
    for job in jobs:
        outbox_ids += record_end(
            session,
            job,
            ended_at=utcnow(),
            exit_code=None,
            missing=True,
            oom_killed=False,
            log_tail=f"NODE_LOST: node {job.node} {note}",
            node_lost=True,
        )
    return list(jobs), outbox_ids


# --- removed -------------------------------------------------------------------------------


def presume_gone(session: Session, nodes: set[str]) -> list[Job]:
    """The containers of nodes presumed gone for good (NODE_GONE_AFTER_S), whose end was
    recorded (as lost) but whose removal no node can confirm: marked gone, GPUs freed, so
    their models may start another. Rows another transaction holds wait for the next sweep."""
    jobs = session.scalars(
        select(Job)
        .where(Job.node.in_(nodes), in_phase(ContainerPhase.ENDED))
        .with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        _record_gone(session, job)
    return list(jobs)


def _record_gone(session: Session, job: Job) -> None:
    """The job's container is gone: the phase, when, and its GPUs back to the pool."""
    if job.container_phase is not ContainerPhase.GONE:
        _move(job, ContainerMove.MARK_GONE)
        job.container_gone_dttm = utcnow()
    release_gpus(session, job.id)


def mark_gone(db: sessionmaker[Session], job_id: int) -> tuple[int, bool]:
    """Its node removed the container: mark it gone (once) and free its GPUs. Returns the
    job's model id and whether it held GPUs (who may launch now)."""
    with transaction(db) as session:
        job = lock_job_row(session, job_id)
        assert job is not None, f"job {job_id} vanished (jobs are never deleted)"
        _record_gone(session, job)
        return job.model_id, bool(job.gpu_ids)


# --- the judgement's tries -----------------------------------------------------------------

#: `begin_completion_try`'s answer for a job judged (or canceled) before this message.
ALREADY_ENDED = "already ended"


def begin_completion_try(db: sessionmaker[Session], job_id: int) -> tuple[int, str | None] | str:
    """Count this try in its own commit, before it starts. Returns (its number, the previous
    try's error), `ALREADY_ENDED`, or why there is nothing to judge. Locks only the job row
    (the model row may be held by a stuck earlier try; that wait is bounded by lock_timeout)."""
    with transaction(db) as session:
        job = lock_job_row(session, job_id)
        if job is None:
            return f"job {job_id} does not exist"
        if job.status.is_terminal:
            return ALREADY_ENDED
        if not job.container_phase.end_recorded:
            return f"job {job_id}'s container has not ended"
        previous = job.last_attempt_error
        job.completion_attempts += 1
        job.last_attempt_dttm = utcnow()
        # What stays if this try never reports back (a hang, a killed worker).
        job.last_attempt_error = "a try did not finish"
        return job.completion_attempts, previous


def completion_try_finished(job: Job) -> None:
    """This try reported back (its verdict says how the job did). The job row is locked."""
    job.last_attempt_error = None
