"""Fixtures for the metrics tests: a model with a job on the real PostgreSQL, and CSV files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, MetricSeries, Model
from app.db.session import transaction
from app.metrics import store
from app.services.status_writes import lock_model_by_id


@dataclass(frozen=True)
class Ids:
    model: int
    job: int


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def new_model(
    factory: sessionmaker[Session], params: dict | None = None, job_type: str = "TRAIN"
) -> Ids:
    with transaction(factory) as session:
        model = Model(
            model_no="G1",
            model_ver="v1",
            train_type="GENERAL",
            params={"total_epoch": 4, "val_interval": 2, **(params or {})},
            image="trainyard/trainer:latest",
        )
        session.add(model)
        session.flush()
        job = new_job(session, model, job_type)
        return Ids(model.id, job.id)


def new_job(
    session: Session, model: Model, job_type: str = "TRAIN", status: str = "RUNNING"
) -> Job:
    attempt = len(session.scalars(select(Job.id).where(Job.model_id == model.id)).all()) + 1
    job = Job(
        model_id=model.id,
        job_type=job_type,
        attempt=attempt,
        status_cd=status,
        params=dict(model.params),
        image=model.image,
    )
    session.add(job)
    session.flush()
    model.current_attempt_id = job.id
    return job


def ingest(factory: sessionmaker[Session], ids: Ids, folder: Path, kind: str = "train") -> None:
    """What the completion worker does: lock the model, ingest inside a savepoint, commit."""
    from app.metrics import ingest_eval_outputs, ingest_train_outputs

    with transaction(factory) as session:
        model = lock_model_by_id(session, ids.model)
        job = session.get(Job, ids.job)
        assert model is not None and job is not None
        with session.begin_nested():
            if kind == "train":
                ingest_train_outputs(session, model, job, folder)
            else:
                ingest_eval_outputs(session, model, job, folder)


def stored(factory: sessionmaker[Session], model_id: int, split: str) -> list[tuple]:
    """(epoch, step, job_id, {metric: value}) of a split, in order."""
    with factory() as session:
        out = []
        for series in session.scalars(
            select(MetricSeries)
            .where(MetricSeries.model_id == model_id, MetricSeries.split == split)
            .order_by(MetricSeries.job_id)
        ):
            names = series.metric_names
            job = series.job_id if split == "test" else None
            for row in store.read_rows(session, split, model_id, len(names), job_id=job):
                out.append(
                    (row.epoch, row.step, row.job_id, dict(zip(names, row.values, strict=True)))
                )
        return out


def count_rows(factory: sessionmaker[Session], table: str, model_id: int | None = None) -> int:
    with factory() as session:
        where = "" if model_id is None else f" WHERE model_id = {int(model_id)}"
        return int(session.scalar(text(f"SELECT count(*) FROM {table}{where}")) or 0)


@pytest.fixture
def model_ids(db: sessionmaker[Session]) -> Ids:
    return new_model(db)


@pytest.fixture
def make_model(db: sessionmaker[Session]) -> Callable[..., Ids]:
    return lambda params=None, job_type="TRAIN": new_model(db, params, job_type)


@pytest.fixture(autouse=True)
def _fresh_live_cursors() -> None:
    # Ids restart at 1 in every test (TRUNCATE … RESTART IDENTITY): forget older cursors.
    from app.metrics import live

    live._cursors.clear()
