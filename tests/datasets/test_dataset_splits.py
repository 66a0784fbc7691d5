"""app.datasets.splits: deterministic, stratified split lists; files; counts."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from app.datasets import (
    DatasetError,
    Sample,
    SplitRatios,
    count_splits,
    make_splits,
    read_split_lists,
    write_split_lists,
)


def labelled(n_per_label: dict[str, int]) -> list[Sample]:
    out = []
    for label, n in n_per_label.items():
        out += [Sample(f"{label}-{i:03d}", label) for i in range(n)]
    return out


def test_ratios_defaults_and_validation() -> None:
    assert SplitRatios().as_dict() == {"train": 0.8, "val": 0.1, "test": 0.1}
    SplitRatios(0.7, 0.2, 0.1)  # float noise within 1e-6 is fine
    SplitRatios(1.0, 0.0, 0.0)
    with pytest.raises(DatasetError, match="sum to 1"):
        SplitRatios(0.8, 0.1, 0.2)
    with pytest.raises(DatasetError, match=">= 0"):
        SplitRatios(1.2, -0.1, -0.1)
    with pytest.raises(DatasetError, match="not a number"):
        SplitRatios("0.8", 0.1, 0.1)  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="finite"):
        SplitRatios(float("nan"), 0.1, 0.1)
    assert SplitRatios.from_mapping({"train": 0.6, "val": 0.2, "test": 0.2}).train == 0.6
    assert SplitRatios.from_mapping(None) == SplitRatios()
    with pytest.raises(DatasetError, match="unknown split ratio key"):
        SplitRatios.from_mapping({"training": 1.0})


def test_same_inputs_give_identical_lists_whatever_the_order() -> None:
    samples = labelled({"cat": 50, "dog": 30, "bird": 20})
    a = make_splits(samples, seed=7)
    shuffled = list(samples)
    random.Random(1).shuffle(shuffled)
    assert make_splits(shuffled, seed=7) == a
    assert make_splits(samples, seed=7, ratios=SplitRatios()) == a
    assert make_splits(samples, seed=8) != a
    for ids in a.values():
        assert ids == sorted(ids)


def test_every_sample_exactly_once_and_counts_follow_ratios() -> None:
    samples = [Sample(f"s{i:04d}") for i in range(1000)]
    splits = make_splits(samples, seed=0, ratios=SplitRatios(0.7, 0.2, 0.1))
    every = splits["train"] + splits["val"] + splits["test"]
    assert sorted(every) == sorted(s.sample_id for s in samples)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [700, 200, 100]


def test_stratified_by_label() -> None:
    samples = labelled({"cat": 100, "dog": 50, "bird": 10})
    splits = make_splits(samples, seed=3)
    label = {s.sample_id: s.label for s in samples}
    for name, ratio in (("train", 0.8), ("val", 0.1), ("test", 0.1)):
        per_label = Counter(label[i] for i in splits[name])
        for lab, n in (("cat", 100), ("dog", 50), ("bird", 10)):
            assert abs(per_label[lab] - ratio * n) <= 1.5, (name, lab, per_label)


def test_stratification_keeps_small_classes_spread() -> None:
    # 10 labels x 5 samples: per-label rounding alone would put every sample in train.
    samples = labelled({f"l{k}": 5 for k in range(10)})
    splits = make_splits(samples, seed=0)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [40, 5, 5]


def test_explicit_splits_are_kept_and_the_rest_assigned() -> None:
    samples = [Sample("fixed-test", "cat", "test"), Sample("fixed-val", "dog", "val")]
    samples += [Sample(f"free{i:02d}", "cat" if i % 2 else "dog") for i in range(20)]
    splits = make_splits(samples, seed=1)
    assert "fixed-test" in splits["test"]
    assert "fixed-val" in splits["val"]
    # ratios apply to the 20 unassigned samples: 16/2/2, plus the two fixed ones
    assert [len(splits[k]) for k in ("train", "val", "test")] == [16, 3, 3]
    for seed in range(5):
        assert "fixed-test" in make_splits(samples, seed=seed)["test"]


def test_zero_ratio_split_stays_empty_and_bad_seed_rejected() -> None:
    samples = labelled({"a": 7, "b": 9})
    splits = make_splits(samples, seed=0, ratios=SplitRatios(0.75, 0.25, 0.0))
    assert splits["test"] == []
    assert len(splits["train"]) == 12
    with pytest.raises(DatasetError, match="seed must be an integer"):
        make_splits(samples, seed="1")  # type: ignore[arg-type]


def test_write_and_read_split_lists(tmp_path: Path) -> None:
    splits = make_splits(labelled({"cat": 10, "dog": 10}), seed=0)
    dest = tmp_path / "job" / "splits"
    write_split_lists(splits, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["test.txt", "train.txt", "val.txt"]
    assert (dest / "train.txt").read_text() == "".join(f"{i}\n" for i in splits["train"])
    assert read_split_lists(dest) == splits
    # overwriting replaces the content and leaves no temporary files behind
    write_split_lists({"train": ["x"], "val": [], "test": ["y"]}, dest)
    assert read_split_lists(dest) == {"train": ["x"], "val": [], "test": ["y"]}
    assert sorted(p.name for p in dest.iterdir()) == ["test.txt", "train.txt", "val.txt"]


def test_split_list_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="lack val"):
        write_split_lists({"train": [], "test": []}, tmp_path)
    with pytest.raises(DatasetError, match="cannot be written"):
        write_split_lists({"train": ["a\nb"], "val": [], "test": []}, tmp_path)
    with pytest.raises(DatasetError, match=r"train\.txt: split list not found"):
        read_split_lists(tmp_path / "none")
    write_split_lists({"train": ["a"], "val": ["b"], "test": ["a"]}, tmp_path / "dup")
    with pytest.raises(DatasetError, match=r"test\.txt line 1: sample 'a' is also in train\.txt"):
        read_split_lists(tmp_path / "dup")


def test_count_splits_with_and_without_labels() -> None:
    samples = labelled({"cat": 10, "dog": 10})
    splits = make_splits(samples, seed=0)
    counts = count_splits(samples, splits)
    assert counts["total"] == 20
    assert counts["splits"]["train"] == {"total": 16, "labels": {"cat": 8, "dog": 8}}
    assert counts["splits"]["val"]["total"] + counts["splits"]["test"]["total"] == 4
    assert set(counts["splits"]) == {"train", "val", "test"}

    plain = [Sample(f"s{i}") for i in range(10)]
    counts = count_splits(plain, make_splits(plain, seed=0))
    assert counts == {
        "total": 10,
        "splits": {
            "train": {"total": 8, "labels": {}},
            "val": {"total": 1, "labels": {}},
            "test": {"total": 1, "labels": {}},
        },
    }


def test_count_splits_rejects_unknown_ids() -> None:
    with pytest.raises(DatasetError, match="not in the manifest"):
        count_splits([Sample("a")], {"train": ["a", "ghost"], "val": [], "test": []})
