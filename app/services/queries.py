"""Read side: create, find and list models."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session, aliased

from app.db.models import Installation, Job, Model
from app.domain.states import JobStatus, StepState


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


def find_model(session: Session, model_uuid: uuid.UUID) -> Model | None:
    return session.scalars(select(Model).where(Model.uuid == model_uuid)).one_or_none()


def jobs_of(session: Session, model: Model) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.model_id == model.id).order_by(Job.id)))


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


def queue_positions(session: Session, models: Iterable[Model]) -> dict[int, int]:
    """Model id -> `queue_position` of its QUEUED job, for the models that have one, in one
    query for a whole list page. Only a model with a step IN_PROGRESS can have a waiting job,
    so a page without one costs no query."""
    in_progress = StepState.IN_PROGRESS.value
    ids = [m.id for m in models if in_progress in (m.step1_state, m.step2_state)]
    if not ids:
        return {}
    ahead = aliased(Job)
    places_ahead = (
        select(func.count(ahead.id))
        .where(
            ahead.status_cd == JobStatus.QUEUED.value,
            tuple_(ahead.queued_dttm, ahead.id) < tuple_(Job.queued_dttm, Job.id),
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(Job.model_id, places_ahead + 1)
        .where(Job.model_id.in_(ids), Job.status_cd == JobStatus.QUEUED.value)
        .order_by(Job.id)
    )
    # A model has at most one live job; were there two, the newest wins (dict keeps the last).
    return {model_id: place for model_id, place in rows}


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
