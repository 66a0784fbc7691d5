"""Datasets: manifests, deterministic split lists and the generated demo dataset (SPEC §6)."""

from typing import Any

from app.datasets.manifest import (
    MANIFEST_NAME,
    SAMPLES_DIR,
    SPLITS,
    DatasetError,
    Sample,
    dataset_exists,
    read_features,
    read_manifest,
    sample_path,
    verify_sample_files,
)
from app.datasets.splits import (
    SplitRatios,
    count_splits,
    make_splits,
    read_split_lists,
    write_split_lists,
)

__all__ = [
    "MANIFEST_NAME",
    "SAMPLES_DIR",
    "SPLITS",
    "DatasetError",
    "Sample",
    "SplitRatios",
    "count_splits",
    "dataset_exists",
    "generate_demo_dataset",
    "make_splits",
    "read_features",
    "read_manifest",
    "read_split_lists",
    "sample_path",
    "verify_sample_files",
    "write_split_lists",
]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `python -m app.datasets.demo` does not import itself twice.
    if name == "generate_demo_dataset":
        from app.datasets.demo import generate_demo_dataset

        return generate_demo_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
