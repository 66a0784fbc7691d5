"""create-tmp and counts (SPEC §6–7): a model's split lists from its dataset.

The split lists live with the model's outputs (`OUTPUT_ROOT/<uuid>/tmp/`), where the trainer
reads them and a job can write: they are read and written through app.jobfiles only. The
dataset itself is only read. Answers name paths relative to the model folder or DATASET_ROOT,
never a host path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app import jobfiles
from app.config import Settings
from app.datasets import (
    DatasetError,
    Sample,
    SplitRatios,
    count_splits,
    make_splits,
    read_manifest,
    read_split_lists,
    write_split_lists,
)
from app.db.models import Model
from app.domain import layout
from app.jobfiles import JobFileError


class DatasetUnavailable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _dataset_dir(settings: Settings, dataset: str | None) -> Path:
    if not dataset:
        raise DatasetUnavailable("NO_DATASET", "This model names no dataset.")
    return settings.dataset_root / dataset


def _plan(dataset_dir: Path, params: dict[str, Any]) -> tuple[list[Sample], dict[str, list[str]]]:
    samples = read_manifest(dataset_dir)
    ratios = SplitRatios.from_mapping(params.get("split"))
    return samples, make_splits(samples, int(params.get("seed", 0)), ratios)


def _unavailable(settings: Settings, exc: Exception) -> DatasetUnavailable:
    """The error for an answer: the dataset's host path becomes `DATASET_ROOT/…`."""
    message = str(exc)
    roots = ((settings.dataset_root, "DATASET_ROOT"), (settings.output_root, "OUTPUT_ROOT"))
    for root, name in roots:
        message = message.replace(str(root), name)
    return DatasetUnavailable("DATASET_INVALID", message)


def write_splits(
    settings: Settings, dataset: str | None, model_uuid: object, params: dict[str, Any]
) -> dict[str, Any]:
    """Write a model's split lists (deterministic for its seed and ratios); return the counts.
    `splitDir` is relative to the model folder."""
    target = layout.split_dir(jobfiles.job_root(settings), model_uuid)
    try:
        samples, splits = _plan(_dataset_dir(settings, dataset), params)
        write_split_lists(splits, target)
    except DatasetError as exc:
        raise _unavailable(settings, exc) from None
    return {"splitDir": str(target), **count_splits(samples, splits)}


def create_split_lists(settings: Settings, model: Model) -> dict[str, Any]:
    return write_splits(settings, model.dataset, model.uuid, model.params)


def split_counts(settings: Settings, model: Model) -> dict[str, Any]:
    """Counts per split (and label) of the written lists, or of the lists run would write."""
    try:
        written = layout.split_dir(jobfiles.job_root(settings), model.uuid)
        if jobfiles.entry(written / "train.txt") is not None:
            samples = read_manifest(_dataset_dir(settings, model.dataset))
            splits, source = read_split_lists(written), "created"
        else:
            samples, splits = _plan(_dataset_dir(settings, model.dataset), model.params)
            source = "planned"
        # Inside the try: written lists may name samples the manifest lacks.
        return {"source": source, **count_splits(samples, splits)}
    except (DatasetError, JobFileError) as exc:
        raise _unavailable(settings, exc) from None
