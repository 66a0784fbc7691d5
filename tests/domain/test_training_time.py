"""학습 시간 across attempts (app/services/training_time.py), from job rows already read:
a run or restart begins the training again, a resume carries it on, and only the time the
containers ran counts (not the pause between a stop and its resume). No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from app.services.training_time import TrainingTime, training_of_jobs

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def job(kind: str, start_s: int | None, end_s: int | None, resume_from: int | None = None) -> Any:
    return SimpleNamespace(
        job_type=kind,
        params={"resume_from": resume_from} if resume_from is not None else {},
        started_dttm=None if start_s is None else T0 + timedelta(seconds=start_s),
        finished_dttm=None if end_s is None else T0 + timedelta(seconds=end_s),
    )


def test_a_resume_carries_the_training_on_and_the_pause_does_not_count() -> None:
    jobs = [job("TRAIN", 0, 60), job("TRAIN", 600, 690, resume_from=2)]
    assert training_of_jobs(jobs) == TrainingTime(started=T0, run_seconds=150, attempts=2)


def test_a_restart_begins_a_new_training() -> None:
    jobs = [job("TRAIN", 0, 60), job("TRAIN", 100, 130, resume_from=1), job("TRAIN", 200, 210)]
    assert training_of_jobs(jobs) == TrainingTime(
        started=T0 + timedelta(seconds=200), run_seconds=10, attempts=1
    )


def test_evaluations_and_attempts_that_never_started_are_left_out() -> None:
    jobs = [
        job("TRAIN", 0, 30),
        job("TRAIN", None, None, resume_from=1),  # queued, or failed to launch
        job("TEST", 40, 45),
        job("TRAIN", 50, None, resume_from=1),  # running now: started, not ended
    ]
    assert training_of_jobs(jobs) == TrainingTime(started=T0, run_seconds=30, attempts=2)


def test_no_training_job_no_training_time() -> None:
    assert training_of_jobs([job("TEST", 0, 5)]) is None
