"""app.datasets.manifest: parsing, and clear errors for bad datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.datasets import (
    DatasetError,
    Sample,
    read_features,
    read_manifest,
    verify_sample_files,
)


def make_dataset(root: Path, manifest: str, samples: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.csv").write_text(manifest, encoding="utf-8")
    (root / "samples").mkdir(exist_ok=True)
    for sample_id, line in (samples or {}).items():
        (root / "samples" / f"{sample_id}.csv").write_text(line, encoding="utf-8")
    return root


def test_reads_samples_labels_and_splits_in_file_order(tmp_path: Path) -> None:
    ds = make_dataset(
        tmp_path / "ds", "sample,label,split\nb,cat,train\na,,\nc,dog,VAL\n\nd,dog, test \n"
    )
    assert read_manifest(ds) == [
        Sample("b", "cat", "train"),
        Sample("a", None, None),
        Sample("c", "dog", "val"),
        Sample("d", "dog", "test"),
    ]


def test_optional_columns_bom_and_extra_columns(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", "\ufeffSample,note\nx,hello\ny,\n")
    assert read_manifest(ds) == [Sample("x"), Sample("y")]


def test_sample_is_frozen() -> None:
    s = Sample("a", "cat", None)
    with pytest.raises(AttributeError):
        s.label = "dog"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("label,split\ncat,train\n", r"manifest\.csv line 1: missing column 'sample'"),
        (
            "sample,label,split\na,cat,train\nb,cat,training\n",
            r"manifest\.csv line 3: bad split 'training' for sample 'b'",
        ),
        (
            "sample,label,split\na,cat,\nb,dog,\na,dog,\n",
            r"manifest\.csv line 4: duplicate sample id 'a' \(first on line 2\)",
        ),
        ("sample,label,split\n../etc,cat,\n", r"line 2: sample id '\.\./etc' must not be a path"),
        ("sample,label,split\n,cat,\n", r"line 2: empty sample id"),
        ("sample,label,split\na,cat,train,extra\n", r"line 2: 4 fields, header has 3"),
        ("sample,label,split\n", r"no samples"),
        ("", r"empty file"),
    ],
)
def test_bad_manifests_name_file_and_line(tmp_path: Path, manifest: str, expected: str) -> None:
    ds = make_dataset(tmp_path / "ds", manifest)
    with pytest.raises(DatasetError, match=expected) as info:
        read_manifest(ds)
    assert str(ds / "manifest.csv") in str(info.value)


def test_missing_folder_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset folder not found: .*nope"):
        read_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty/manifest\.csv: manifest not found"):
        read_manifest(tmp_path / "empty")


def test_not_utf8_is_a_dataset_error(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.csv").write_bytes(b"sample,label\n\xff\xfe\xfa,cat\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_manifest(ds)


def test_verify_sample_files_lists_missing(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", "sample\na\nb\nc\n", {"a": "1,2\n"})
    samples = read_manifest(ds)
    with pytest.raises(DatasetError, match=r"2 sample file\(s\) missing: 'b', 'c'"):
        verify_sample_files(ds, samples)
    verify_sample_files(ds, samples[:1])


def test_read_features(tmp_path: Path) -> None:
    ds = make_dataset(
        tmp_path / "ds",
        "sample\na\nb\nc\n",
        {"a": "1.5, -2,3e-1\n", "b": "1,x\n", "c": "1,2\n3,4\n"},
    )
    assert read_features(ds, "a") == [1.5, -2.0, 0.3]
    with pytest.raises(DatasetError, match=r"b\.csv line 1: field 2 'x' is not a number"):
        read_features(ds, "b")
    with pytest.raises(DatasetError, match="exactly one line"):
        read_features(ds, "c")
    with pytest.raises(DatasetError, match="sample file not found"):
        read_features(ds, "zzz")
