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
    SplitRatios,
    count_splits,
    make_splits,
    read_manifest,
    read_split_lists,
    write_split_lists,
)
from app.db.models import Model


class DatasetUnavailable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def split_dir(settings: Settings, model: Model) -> Path:
    return settings.output_root / str(model.uuid) / "tmp"


def _dataset_dir(settings: Settings, model: Model) -> Path:
    if not model.dataset:
        raise DatasetUnavailable("NO_DATASET", "This model names no dataset.")
    return settings.dataset_root / model.dataset


def _ratios(model: Model) -> SplitRatios:
    split = model.params.get("split") or {}
    return SplitRatios(**split)


def create_split_lists(settings: Settings, model: Model) -> dict[str, Any]:
    """Write the split lists (deterministic for the seed and ratios) and return the counts."""
    try:
        samples = read_manifest(_dataset_dir(settings, model))
        splits = make_splits(samples, int(model.params.get("seed", 0)), _ratios(model))
        write_split_lists(splits, split_dir(settings, model))
    except DatasetError as exc:
        raise DatasetUnavailable("DATASET_INVALID", str(exc)) from None
    return {"splitDir": str(split_dir(settings, model)), **count_splits(samples, splits)}


def split_counts(settings: Settings, model: Model) -> dict[str, Any]:
    """Counts per split (and label) of the written lists, or of the lists run would write."""
    try:
        samples = read_manifest(_dataset_dir(settings, model))
        written = split_dir(settings, model)
        if (written / "train.txt").exists():
            splits, source = read_split_lists(written), "created"
        else:
            splits = make_splits(samples, int(model.params.get("seed", 0)), _ratios(model))
            source = "planned"
    except DatasetError as exc:
        raise DatasetUnavailable("DATASET_INVALID", str(exc)) from None
    return {"source": source, **count_splits(samples, splits)}
