"""The keys of a job's params that the platform itself sets; a caller can never set them.

A job's params are its model's params plus these. They steer what the worker does with the
job's folder and checkpoints (resume after epoch N, set the earlier outputs aside, test
checkpoint E), so a caller who could set them on a model would steer every later job of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.transitions import NewJob

RESUME_FROM = "resume_from"  # TRAIN resumed: the checkpoint epoch it continues after
EVAL_EPOCH = "epoch"  # EVAL: the checkpoint epoch it tests
FRESH_OUTPUTS = "fresh_outputs"  # TRAIN restarted: set the earlier outputs aside first

RESERVED_PARAMS = frozenset({RESUME_FROM, EVAL_EPOCH, FRESH_OUTPUTS})


def job_params(model_params: Mapping[str, Any], new: NewJob) -> dict[str, Any]:
    """The params of a new job: the model's, without any reserved key it may carry (a row
    written before they were refused), plus the ones this job needs."""
    params = {k: v for k, v in model_params.items() if k not in RESERVED_PARAMS}
    if new.resume_from is not None:
        params[RESUME_FROM] = new.resume_from
    if new.eval_epoch is not None:
        params[EVAL_EPOCH] = new.eval_epoch
    if new.fresh_outputs:
        params[FRESH_OUTPUTS] = True
    return params
