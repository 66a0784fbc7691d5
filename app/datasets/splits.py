"""Train / val / test split lists: deterministic assignment, files, and counts.

The assignment here is mirrored by the reference trainer (`trainer/train.py`, which may not
import this package); `tests/trainer` checks that both give identical lists.

The lists live in a model's output folder, which its jobs can write: they are written and read
through app.jobfiles, and an error quotes at most a short snippet of what a list holds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import jobfiles
from app.datasets.manifest import SPLITS, DatasetError, Sample
from app.domain.jobtext import snippet
from app.jobfiles import FileKind, JobFileError, JobPath

RATIO_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SplitRatios:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        for name in SPLITS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DatasetError(f"split ratio {name}={value!r} is not a number")
            if not math.isfinite(value) or value < 0:
                raise DatasetError(f"split ratio {name}={value!r} must be a finite number >= 0")
        total = self.train + self.val + self.test
        if abs(total - 1.0) > RATIO_TOLERANCE:
            raise DatasetError(
                f"split ratios must sum to 1 (train={self.train}, val={self.val}, "
                f"test={self.test} sum to {total:g})"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SplitRatios:
        """Build from e.g. `{"train": 0.7, "val": 0.15, "test": 0.15}`; missing keys default."""
        if not values:
            return cls()
        unknown = set(values) - set(SPLITS)
        if unknown:
            raise DatasetError(f"unknown split ratio key(s): {', '.join(sorted(unknown))}")
        return cls(**{k: values[k] for k in SPLITS if k in values})

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in SPLITS}


def make_splits(
    samples: Iterable[Sample], seed: int, ratios: SplitRatios | None = None
) -> dict[str, list[str]]:
    """Assign every sample to train/val/test; each list comes back sorted.

    Samples with an explicit split keep it. The others are grouped by label (one group when
    there are no labels; unlabeled samples form their own group), groups are taken in sorted
    order, ids are sorted then shuffled with `random.Random(seed)`, and each id goes to the
    split whose running count lags its ratio the most, so every label is spread over the
    splits in proportion and the overall counts stay within one sample of the ratios.
    Same samples + seed + ratios => identical lists.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"split seed must be an integer, got {seed!r}")
    ratios = ratios or SplitRatios()
    shares = [ratios.train, ratios.val, ratios.test]
    result: dict[str, list[str]] = {name: [] for name in SPLITS}
    groups: dict[str, list[str]] = {}
    for sample in sorted(samples, key=lambda s: s.sample_id):
        if sample.split is not None:
            if sample.split not in result:
                raise DatasetError(f"sample {sample.sample_id!r}: bad split {sample.split!r}")
            result[sample.split].append(sample.sample_id)
        else:
            # "" sorts before any real label and cannot be one (empty labels are None).
            groups.setdefault(sample.label or "", []).append(sample.sample_id)

    rng = random.Random(seed)
    counts = [0, 0, 0]
    assigned = 0
    for key in sorted(groups):
        ids = groups[key]
        rng.shuffle(ids)
        for sample_id in ids:
            assigned += 1
            lag = [shares[i] * assigned - counts[i] for i in range(3)]
            best = max(range(3), key=lambda i: (lag[i], -i))
            counts[best] += 1
            result[SPLITS[best]].append(sample_id)
    for ids in result.values():
        ids.sort()
    return result


def _split_file(directory: JobPath, name: str) -> JobPath:
    return directory / f"{name}.txt"


def write_split_lists(splits: Mapping[str, Iterable[str]], dest_dir: JobPath | Path) -> None:
    """Write `train.txt`, `val.txt`, `test.txt` (one sample id per line) into `dest_dir`.

    Each file is written to a temporary file in the same folder and then renamed over the
    target, so a reader never sees a half-written list.
    """
    missing = [name for name in SPLITS if name not in splits]
    if missing:
        raise DatasetError(f"split lists lack {', '.join(missing)}")
    folder = jobfiles.beneath(dest_dir)
    try:
        jobfiles.make_dirs(folder)
        for name in SPLITS:
            ids = list(splits[name])
            for sample_id in ids:
                if not sample_id or "\n" in sample_id or "\r" in sample_id:
                    why = f"sample id {snippet(sample_id)} cannot be written as a line"
                    raise DatasetError(f"{name}: {why}")
            body = "".join(f"{sample_id}\n" for sample_id in ids)
            jobfiles.write_file(_split_file(folder, name), body.encode("utf-8"))
    except JobFileError as exc:
        raise DatasetError(f"{exc}: the split list cannot be written there") from None


def read_split_lists(directory: JobPath | Path) -> dict[str, list[str]]:
    """Read the three split lists written by `write_split_lists` (blank lines ignored)."""
    folder = jobfiles.beneath(directory)
    result: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name in SPLITS:
        path = _split_file(folder, name)
        try:
            text = jobfiles.read_file(path, FileKind.SPLIT_LIST).decode("utf-8")
        except JobFileError as exc:
            if exc.reason is jobfiles.Reason.MISSING:
                raise DatasetError(f"{path}: split list not found") from None
            raise DatasetError(str(exc)) from None
        except UnicodeDecodeError as exc:
            line_no = text_line(exc.object, exc.start)
            raise DatasetError(f"{path} line {line_no}: not UTF-8 text") from None
        ids: list[str] = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            sample_id = line.strip()
            if not sample_id:
                continue
            if sample_id in seen:
                raise DatasetError(
                    f"{path} line {line_no}: sample {snippet(sample_id)} is also in "
                    f"{seen[sample_id]}.txt"
                )
            seen[sample_id] = name
            ids.append(sample_id)
        result[name] = ids
    return result


def text_line(data: bytes, offset: int) -> int:
    """The number of the line that byte `offset` of `data` is on."""
    return data.count(b"\n", 0, offset) + 1


def count_splits(samples: Iterable[Sample], splits: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """Counts per split and per label::

        {"total": 600, "splits": {"train": {"total": 480, "labels": {"cat": 160, ...}}, ...}}

    `labels` is empty for a dataset without labels (unlabeled samples are not listed in it).
    Raises DatasetError when a split list names a sample the manifest does not have.
    """
    label_of = {s.sample_id: s.label for s in samples}
    out: dict[str, Any] = {"total": 0, "splits": {}}
    for name in SPLITS:
        ids = list(splits.get(name, []))
        labels: dict[str, int] = {}
        for sample_id in ids:
            if sample_id not in label_of:
                raise DatasetError(
                    f"{name} split names sample {snippet(sample_id)}, which is not in the manifest"
                )
            label = label_of[sample_id]
            if label is not None:
                labels[label] = labels.get(label, 0) + 1
        out["splits"][name] = {"total": len(ids), "labels": dict(sorted(labels.items()))}
        out["total"] += len(ids)
    return out
