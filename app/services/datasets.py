"""create-tmp and counts (SPEC §6–7): a model's split lists from its dataset.

The split lists live with the model's outputs (`OUTPUT_ROOT/<uuid>/tmp/`), where the trainer
reads them; the dataset itself is only read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


class DatasetUnavailable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def split_dir(settings: Settings, model: Model) -> Path:
    return layout.split_dir(settings.output_root, model.uuid)


def _dataset_dir(settings: Settings, dataset: str | None) -> Path:
    if not dataset:
        raise DatasetUnavailable("NO_DATASET", "This model names no dataset.")
    return settings.dataset_root / dataset


def _plan(dataset_dir: Path, params: dict[str, Any]) -> tuple[list[Sample], dict[str, list[str]]]:
    samples = read_manifest(dataset_dir)
    ratios = SplitRatios.from_mapping(params.get("split"))
    return samples, make_splits(samples, int(params.get("seed", 0)), ratios)


def write_splits(
    settings: Settings, dataset: str | None, model_uuid: object, params: dict[str, Any]
) -> dict[str, Any]:
    """Write a model's split lists (deterministic for its seed and ratios); return the counts."""
    target = layout.split_dir(settings.output_root, model_uuid)
    try:
        samples, splits = _plan(_dataset_dir(settings, dataset), params)
        write_split_lists(splits, target)
    except DatasetError as exc:
        raise DatasetUnavailable("DATASET_INVALID", str(exc)) from None
    return {"splitDir": str(target), **count_splits(samples, splits)}


def create_split_lists(settings: Settings, model: Model) -> dict[str, Any]:
    return write_splits(settings, model.dataset, model.uuid, model.params)


def split_counts(settings: Settings, model: Model) -> dict[str, Any]:
    """Counts per split (and label) of the written lists, or of the lists run would write."""
    try:
        written = split_dir(settings, model)
        if (written / "train.txt").exists():
            samples = read_manifest(_dataset_dir(settings, model.dataset))
            splits, source = read_split_lists(written), "created"
        else:
            samples, splits = _plan(_dataset_dir(settings, model.dataset), model.params)
            source = "planned"
    except DatasetError as exc:
        raise DatasetUnavailable("DATASET_INVALID", str(exc)) from None
    return {"source": source, **count_splits(samples, splits)}
