"""How long a model's training took, across its attempts (docs/dashboard.md, "학습 시간").

A model's step-1 times (`step1_strt_dttm`, `step1_end_dttm`) are those of its current attempt
(SPEC §4): after a resume they say "12:21 ~ 12:21 (3초)" for a training that ran for minutes.
What a person asks of "학습 시간" is the training the model's weights come from: the run or
restart that began it and every resume that carried it on (a restart trains from scratch, so
it begins a new training). Its time is the first attempt's start, and the time its containers
ran, added up: the pause between a stop and its resume is not training time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Executable, Integer, any_, bindparam, select
from sqlalchemy.orm import Session

from app.db import driver_rows
from app.db.models import Job
from app.domain.job_params import RESUME_FROM
from app.domain.states import JobType, StepState
from app.domain.timefmt import as_utc
from app.services.queries import ModelRow


@dataclass(frozen=True)
class TrainingTime:
    """The current training of one model."""

    started: datetime | None  # the container start of its first attempt that started one
    run_seconds: int | None  # its ended attempts' run times added up; None until one ended
    attempts: int  # its attempts that started a container (the run or restart, the resumes)


def training_times(session: Session, models: Iterable[ModelRow]) -> dict[int, TrainingTime]:
    """Model id -> its `TrainingTime`, in one query for a whole list page. A model whose
    training never started (step 1 READY) has none, and a page of only those costs no query."""
    ids = [m.id for m in models if m.step1_state != StepState.READY.value]
    if not ids:
        return {}
    statement = _train_jobs_statement(session.get_bind().dialect.name)
    by_model: dict[int, list[_Attempt]] = {}
    for model_id, started, finished, resumed in driver_rows.rows(session, statement, {"ids": ids}):
        _carry_on(by_model.setdefault(model_id, []), (started, finished, bool(resumed)))
    return {model_id: _sum(jobs) for model_id, jobs in by_model.items()}


def training_of_jobs(jobs: Iterable[Any]) -> TrainingTime | None:
    """The same, from a model's jobs already read (a detail has them all, by id): no query.
    `jobs`: `Job`s or rows with job_type, params, started_dttm and finished_dttm."""
    train: list[_Attempt] = []
    for job in jobs:
        if job.job_type == JobType.TRAIN.value:
            resumed = (job.params or {}).get(RESUME_FROM) is not None
            _carry_on(train, (job.started_dttm, job.finished_dttm, resumed))
    return _sum(train) if train else None


#: One TRAIN job: its container's start and end, and whether it resumed an earlier one.
_Attempt = tuple[datetime | None, datetime | None, bool]


def _carry_on(training: list[_Attempt], attempt: _Attempt) -> None:
    """Add the model's next TRAIN job, in the order they were made, to its current training:
    a run or restart (not resumed) starts the training again, a resume carries it on."""
    if not attempt[2]:
        training.clear()
    training.append(attempt)


def _sum(jobs: list[_Attempt]) -> TrainingTime:
    ran = [(started, finished) for started, finished, _ in jobs if started is not None]
    ended = [
        max(0, int((as_utc(finished) - as_utc(started)).total_seconds()))
        for started, finished in ran
        if finished is not None
    ]
    return TrainingTime(
        started=ran[0][0] if ran else None,
        run_seconds=sum(ended) if ended else None,
        attempts=len(ran),
    )


# Built once, values bound at execution (as queries.py's statements).
@functools.cache
def _train_jobs_statement(dialect: str) -> Executable:
    """The TRAIN jobs of the models `ids` in the order they were made, each with whether it
    resumed an earlier one (its params carry `resume_from`). On PostgreSQL the ids are one
    array value (`= ANY`): an expanding IN list is rewritten on every execution (a sixth of
    this function's profiled time), and cannot run on the driver's cursor (driver_rows.py)."""
    if dialect == "postgresql":
        of_models = Job.model_id == any_(bindparam("ids", type_=ARRAY(Integer)))
    else:
        of_models = Job.model_id.in_(bindparam("ids", expanding=True))
    return (
        select(
            Job.model_id,
            Job.started_dttm,
            Job.finished_dttm,
            Job.params[RESUME_FROM].is_not(None),
        )
        .where(of_models, Job.job_type == JobType.TRAIN.value)
        .order_by(Job.model_id, Job.id)
    )
