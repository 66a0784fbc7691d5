"""Reading a dataset folder: `manifest.csv` plus one feature file per sample.

Layout (SPEC §6, "Datasets")::

    <DATASET_ROOT>/<name>/
        manifest.csv          header `sample,label,split`; one row per sample
        samples/<sample>.csv  one line of comma-separated floats: the feature vector

`sample` is required and unique. `label` and `split` may be empty or the columns may be left
out; a non-empty `split` is one of `train`, `val`, `test` (case-insensitive). Other columns are
ignored.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "manifest.csv"
SAMPLES_DIR = "samples"
SPLITS: tuple[str, ...] = ("train", "val", "test")
REQUIRED_COLUMNS: tuple[str, ...] = ("sample",)
OPTIONAL_COLUMNS: tuple[str, ...] = ("label", "split")


class DatasetError(Exception):
    """A dataset, manifest or split list is missing or malformed; the message says where."""


@dataclass(frozen=True)
class Sample:
    sample_id: str
    label: str | None = None
    split: str | None = None


def _check_sample_id(sample_id: str, where: str) -> None:
    if not sample_id:
        raise DatasetError(f"{where}: empty sample id")
    if sample_id in (".", "..") or "/" in sample_id or "\\" in sample_id:
        raise DatasetError(f"{where}: sample id {sample_id!r} must not be a path")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in sample_id):
        raise DatasetError(f"{where}: sample id {sample_id!r} contains control characters")


def _cell(row: list[str], index: dict[str, int], name: str) -> str:
    return row[index[name]].strip() if name in index else ""


def dataset_exists(dataset_root: Path, name: str) -> bool:
    """Whether DATASET_ROOT holds a dataset folder `name` (the operator's, not a job's)."""
    return (Path(dataset_root) / name).is_dir()


def read_manifest(dataset_dir: Path) -> list[Sample]:
    """Parse `dataset_dir/manifest.csv` into samples, in file order.

    Raises DatasetError naming the file and line for a missing folder or manifest, a missing
    `sample` column, an empty or path-like sample id, a bad split value, a duplicate sample id,
    an undecodable file or a manifest without samples.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"dataset folder not found: {dataset_dir}")
    manifest = dataset_dir / MANIFEST_NAME
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: manifest not found")

    samples: list[Sample] = []
    first_line: dict[str, int] = {}
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{manifest}: empty file (expected header sample,label,split)")
            columns = [name.strip().lower() for name in header]
            for name in REQUIRED_COLUMNS:
                if name not in columns:
                    raise DatasetError(
                        f"{manifest} line 1: missing column {name!r} "
                        f"(header is {','.join(header)!r}; expected sample,label,split)"
                    )
            index = {
                name: columns.index(name)
                for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
                if name in columns
            }
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                where = f"{manifest} line {line}"
                if len(row) < len(header):
                    row = row + [""] * (len(header) - len(row))
                elif len(row) > len(header):
                    raise DatasetError(f"{where}: {len(row)} fields, header has {len(header)}")
                sample_id = _cell(row, index, "sample")
                _check_sample_id(sample_id, where)
                if sample_id in first_line:
                    raise DatasetError(
                        f"{where}: duplicate sample id {sample_id!r} "
                        f"(first on line {first_line[sample_id]})"
                    )
                first_line[sample_id] = line
                raw_split = _cell(row, index, "split")
                split = raw_split.lower() or None
                if split is not None and split not in SPLITS:
                    raise DatasetError(
                        f"{where}: bad split {raw_split!r} for sample {sample_id!r} "
                        f"(expected one of {', '.join(SPLITS)} or empty)"
                    )
                samples.append(Sample(sample_id, _cell(row, index, "label") or None, split))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{manifest}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise DatasetError(f"{manifest}: malformed CSV: {exc}") from exc
    if not samples:
        raise DatasetError(f"{manifest}: no samples (only a header)")
    return samples


def sample_path(dataset_dir: Path, sample_id: str) -> Path:
    return Path(dataset_dir) / SAMPLES_DIR / f"{sample_id}.csv"


def verify_sample_files(dataset_dir: Path, samples: list[Sample]) -> None:
    """Raise DatasetError when `samples/` or any sample's feature file is missing."""
    folder = Path(dataset_dir) / SAMPLES_DIR
    if not folder.is_dir():
        raise DatasetError(f"{folder}: samples folder not found")
    missing = [s.sample_id for s in samples if not sample_path(dataset_dir, s.sample_id).is_file()]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(f"{folder}: {len(missing)} sample file(s) missing: {shown}{more}")


def read_features(dataset_dir: Path, sample_id: str) -> list[float]:
    """The feature vector of one sample (`samples/<sample>.csv`, one line of floats)."""
    path = sample_path(dataset_dir, sample_id)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: sample file not found") from exc
    if not text or "\n" in text:
        raise DatasetError(f"{path} line 1: expected exactly one line of comma-separated floats")
    values: list[float] = []
    for pos, field in enumerate(text.split(","), start=1):
        try:
            value = float(field)
        except ValueError:
            raise DatasetError(
                f"{path} line 1: field {pos} {field.strip()!r} is not a number"
            ) from None
        if not math.isfinite(value):
            raise DatasetError(f"{path} line 1: field {pos} is not finite")
        values.append(value)
    return values
