"""Where a model's files live under OUTPUT_ROOT (paths only; no I/O).

OUTPUT_ROOT/<model uuid>/            mounted into the job's container
    tmp/{train,val,test}.txt          split lists (create-tmp, or run when missing)
    train/                            TRAIN: train.csv, val.csv, checkpoints/, progress.json
    eval-<job id>/test/               EVAL: test.csv, results_epoch_<E>.zip
    set-aside/train-before-job-<id>/  what a restart moved out of the way
"""

from __future__ import annotations

from typing import Any, TypeVar

from app.domain.states import JobType

# A `Path` (a container's mount, an argument to it) or an `app.jobfiles.JobPath` (for any
# access from the host, which must go through that gate): both join with `/`.
P = TypeVar("P", bound=Any)


def model_dir(output_root: P, model_uuid: object) -> P:
    return output_root / str(model_uuid)


def split_dir(output_root: P, model_uuid: object) -> P:
    return model_dir(output_root, model_uuid) / "tmp"


def train_dir(output_root: P, model_uuid: object) -> P:
    return model_dir(output_root, model_uuid) / "train"


def eval_dir(output_root: P, model_uuid: object, job_id: int) -> P:
    return model_dir(output_root, model_uuid) / f"eval-{job_id}"


def job_output_dir(output_root: P, model_uuid: object, job_type: JobType, job_id: int) -> P:
    if job_type is JobType.TRAIN:
        return train_dir(output_root, model_uuid)
    return eval_dir(output_root, model_uuid, job_id)


def set_aside_dir(output_root: P, model_uuid: object, job_id: int) -> P:
    return model_dir(output_root, model_uuid) / "set-aside" / f"train-before-job-{job_id}"


def results_zip(eval_output: P, epoch: int | None) -> P:
    return eval_output / "test" / f"results_epoch_{epoch}.zip"
