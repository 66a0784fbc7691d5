"""Read side: find and list models and jobs; the named conditions on a job's container phase."""

from __future__ import annotations

import math
import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select, tuple_
from sqlalchemy.orm import Session

from app.db.models import Installation, Job, Model
from app.domain.container_phases import ContainerPhase
from app.domain.states import JobStatus, JobType


@dataclass(frozen=True)
class Page:
    items: list[Model]
    total: int
    pages: int


def installation_id(session: Session) -> str:
    """This installation's id (made once by the migrations)."""
    value = session.scalar(select(Installation.id))
    if value is None:
        raise RuntimeError("tb_installation is empty: run `trainyard migrate` on this database")
    return value


def in_phase(phase: ContainerPhase) -> ColumnElement[bool]:
    """SQL for `Job.container_phase is phase` (the same columns as phase_of reads)."""
    claimed, ended, gone = (
        Job.node.is_not(None),
        Job.container_ended_dttm.is_not(None),
        Job.container_gone_dttm.is_not(None),
    )
    return {
        ContainerPhase.UNCLAIMED: Job.node.is_(None),
        ContainerPhase.CLAIMED: and_(claimed, ~ended, ~gone),
        ContainerPhase.ENDED: and_(ended, ~gone),
        ContainerPhase.GONE: gone,
    }[phase]


def holds_container() -> ColumnElement[bool]:
    """SQL for `Job.container_phase.holds_container`: claimed by a node, container not
    confirmed gone. Until then the job counts on its node and its model starts no other."""
    return and_(Job.node.is_not(None), Job.container_gone_dttm.is_(None))


def held_by(node: str) -> ColumnElement[bool]:
    """The jobs `node` holds (claimed by it, container not confirmed gone)."""
    return and_(Job.node == node, holds_container())


def find_model(session: Session, model_uuid: uuid.UUID) -> Model | None:
    return session.scalars(select(Model).where(Model.uuid == model_uuid)).one_or_none()


def jobs_of(session: Session, model: Model) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.model_id == model.id).order_by(Job.id)))


def job_to_show(session: Session, model: Model, job_id: int | None) -> Job | None:
    """The model's job `job_id` (LookupError when it has none such), else its current
    attempt, else its last job; None when it has no jobs."""
    jobs = jobs_of(session, model)
    if job_id is not None:
        for job in jobs:
            if job.id == job_id:
                return job
        raise LookupError(f"model {model.uuid} has no job {job_id}")
    for job in jobs:
        if job.id == model.current_attempt_id:
            return job
    return jobs[-1] if jobs else None


def latest_successful_eval(session: Session, model: Model) -> Job | None:
    """The model's newest EVAL job that succeeded: the one its results come from."""
    return session.scalars(
        select(Job)
        .where(
            Job.model_id == model.id,
            Job.job_type == JobType.EVAL.value,
            Job.status_cd == JobStatus.SUCCESS.value,
        )
        .order_by(Job.id.desc())
        .limit(1)
    ).one_or_none()


def queue_position(session: Session, job: Job) -> int | None:
    """1-based place of a QUEUED job among all QUEUED jobs of the installation in launch order
    (queued time, then id: the order nodes launch them in, workers/capacity.py); None for a
    job that is not QUEUED. Jobs already claimed by a node but not yet started count ahead."""
    if job.status_cd != JobStatus.QUEUED.value or job.id is None:
        return None
    ahead = select(func.count(Job.id)).where(
        Job.status_cd == JobStatus.QUEUED.value,
        tuple_(Job.queued_dttm, Job.id) < tuple_(job.queued_dttm, job.id),
    )
    return (session.scalar(ahead) or 0) + 1


def queued_job_of(session: Session, model_id: int) -> Job | None:
    """The model's QUEUED job, if it has one (a model has at most one live job)."""
    return session.scalars(
        select(Job)
        .where(Job.model_id == model_id, Job.status_cd == JobStatus.QUEUED.value)
        .order_by(Job.id.desc())
        .limit(1)
    ).first()


class CountCache:
    """Row counts per (status, modelNo) filter, kept for `ttl_s` seconds per API process.

    Counting 10,000 rows for every list request was a third of its cost; a total that is at
    most a second old is fine for a page footer. ttl_s = 0 turns it off (exact counts).
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._counts: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, status: str, model_no: str, conditions: list) -> int:
        key = (status, model_no)
        now = time.monotonic()
        if self.ttl_s > 0:
            with self._lock:
                cached = self._counts.get(key)
            if cached is not None and now - cached[0] < self.ttl_s:
                return cached[1]
        total = session.scalar(select(func.count(Model.id)).where(*conditions)) or 0
        if self.ttl_s > 0:
            with self._lock:
                self._counts[key] = (now, total)
        return total


def list_models(
    session: Session, status: str, model_no: str, page: int, size: int, counts: CountCache
) -> Page:
    """Newest first; `status` and `model_no` filter when not empty (indexed: see models.py)."""
    conditions = []
    if status:
        conditions.append(Model.status_cd == status)
    if model_no:
        conditions.append(Model.model_no == model_no)
    total = counts.get(session, status, model_no, conditions)
    items = list(
        session.scalars(
            select(Model)
            .where(*conditions)
            .order_by(Model.id.desc())
            .offset(page * size)
            .limit(size)
        )
    )
    return Page(items, total, math.ceil(total / size) if total else 0)
