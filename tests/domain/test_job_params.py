"""A job's params: the model's, with the keys only the platform sets (app/domain/job_params.py)."""

from __future__ import annotations

from app.domain.job_params import RESERVED_PARAMS, job_params
from app.domain.states import JobType
from app.domain.transitions import NewJob


def test_the_platform_adds_exactly_the_reserved_keys() -> None:
    model = {"total_epoch": 4, "lr": 0.1}
    assert job_params(model, NewJob(JobType.TRAIN)) == model
    added = {
        **job_params(model, NewJob(JobType.TRAIN, resume_from=2)),
        **job_params(model, NewJob(JobType.EVAL, eval_epoch=3)),
        **job_params(model, NewJob(JobType.TRAIN, fresh_outputs=True)),
    }
    assert added.keys() - model.keys() == RESERVED_PARAMS


def test_reserved_keys_a_model_row_carries_never_reach_a_job() -> None:
    """A row written before such keys were refused cannot steer a resume or a test."""
    model = {"total_epoch": 4, "resume_from": 3, "epoch": 9, "fresh_outputs": True}
    assert job_params(model, NewJob(JobType.TRAIN)) == {"total_epoch": 4}
    assert job_params(model, NewJob(JobType.EVAL, eval_epoch=2)) == {"total_epoch": 4, "epoch": 2}
