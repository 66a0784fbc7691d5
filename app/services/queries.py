"""Read side: create, find and list models."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Job, Model


@dataclass(frozen=True)
class Page:
    items: list[Model]
    total: int
    pages: int


def find_model(session: Session, model_uuid: uuid.UUID) -> Model | None:
    return session.scalars(select(Model).where(Model.uuid == model_uuid)).one_or_none()


def jobs_of(session: Session, model: Model) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.model_id == model.id).order_by(Job.id)))


def list_models(session: Session, status: str, model_no: str, page: int, size: int) -> Page:
    """Newest first; `status` and `model_no` filter when not empty (indexed: see models.py)."""
    conditions = []
    if status:
        conditions.append(Model.status_cd == status)
    if model_no:
        conditions.append(Model.model_no == model_no)
    total = session.scalar(select(func.count(Model.id)).where(*conditions)) or 0
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
