"""app.datasets.demo: the generated demo dataset."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from app.datasets import (
    DatasetError,
    count_splits,
    generate_demo_dataset,
    make_splits,
    read_features,
    read_manifest,
    verify_sample_files,
)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_demo_dataset_shape(tmp_path: Path) -> None:
    ds = generate_demo_dataset(tmp_path / "demo")
    samples = read_manifest(ds)
    verify_sample_files(ds, samples)
    assert len(samples) == 600
    assert all(s.split is None for s in samples)
    assert Counter(s.label for s in samples) == {"cat": 200, "dog": 200, "bird": 200}
    features = read_features(ds, samples[0].sample_id)
    assert len(features) == 8
    counts = count_splits(samples, make_splits(samples, seed=0))
    assert counts["splits"]["train"]["labels"] == {"bird": 160, "cat": 160, "dog": 160}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temp folder left


def test_classes_are_separated(tmp_path: Path) -> None:
    """Nearest-class-mean on the raw features is far above chance: the data is learnable."""
    ds = generate_demo_dataset(tmp_path / "demo", n_samples=300)
    samples = read_manifest(ds)
    xs = {s.sample_id: read_features(ds, s.sample_id) for s in samples}
    means = {}
    for label in {s.label for s in samples}:
        rows = [xs[s.sample_id] for s in samples if s.label == label]
        means[label] = [sum(col) / len(rows) for col in zip(*rows, strict=True)]

    def nearest(x: list[float]) -> str | None:
        return min(means, key=lambda k: sum((a - b) ** 2 for a, b in zip(x, means[k], strict=True)))

    correct = sum(nearest(xs[s.sample_id]) == s.label for s in samples)
    assert correct / len(samples) > 0.8


def test_deterministic_for_seed(tmp_path: Path) -> None:
    a = tree_bytes(generate_demo_dataset(tmp_path / "a", n_samples=50, seed=4))
    b = tree_bytes(generate_demo_dataset(tmp_path / "b", n_samples=50, seed=4))
    c = tree_bytes(generate_demo_dataset(tmp_path / "c", n_samples=50, seed=5))
    assert a == b
    assert a != c
    assert a["manifest.csv"] == c["manifest.csv"]  # same ids and labels, other features


def test_idempotent_and_refuses_foreign_folders(tmp_path: Path) -> None:
    ds = generate_demo_dataset(tmp_path / "demo", n_samples=30)
    marker = ds / "samples" / "s00000.csv"
    marker.write_text("9,9,9,9,9,9,9,9\n")
    assert generate_demo_dataset(ds, n_samples=30) == ds
    assert marker.read_text() == "9,9,9,9,9,9,9,9\n"  # a complete dataset is left alone

    empty = tmp_path / "empty"
    empty.mkdir()
    generate_demo_dataset(empty, n_samples=30, n_classes=2, n_features=3)
    assert len(read_manifest(empty)) == 30

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a complete dataset"):
        generate_demo_dataset(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"

    with pytest.raises(DatasetError, match="n_classes >= 2"):
        generate_demo_dataset(tmp_path / "bad", n_classes=1)


def test_cli(tmp_path: Path) -> None:
    dest = tmp_path / "root" / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "app.datasets.demo", str(dest), "--samples", "40", "--classes", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(dest)
    assert "Warning" not in proc.stderr
    assert {s.label for s in read_manifest(dest)} == {"cat", "dog", "bird", "fish"}
