"""workers/outputs.py through the gate: what a hostile job leaves in its folder cannot make
the worker chown outside it, block on a FIFO, or record absurd progress. No services needed."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from app.domain import layout
from app.domain.states import JobType
from app.jobfiles import JobFileError, JobPath, Reason
from workers import outputs

MODEL = "5d1e1a9e-2222-4c4c-8c8c-123456789abc"


@pytest.fixture
def root(tmp_path: Path) -> JobPath:
    return JobPath(tmp_path / "outputs")


def test_make_writable_dir_creates_the_root_and_the_folders(root: JobPath) -> None:
    outputs.make_writable_dir(layout.train_dir(root, MODEL))
    made = root.root / MODEL / "train"
    assert made.is_dir()
    if os.geteuid() == 0:
        assert made.stat().st_uid == outputs.CONTAINER_UID
    else:
        assert made.stat().st_mode & 0o777 == 0o777


def test_make_writable_dir_refuses_a_train_folder_linked_to_etc(
    root: JobPath, tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    before = etc.stat()
    (root.root / MODEL).mkdir(parents=True)
    (root.root / MODEL / "train").symlink_to(etc)  # `rm -rf train; ln -s /etc train`
    with pytest.raises(JobFileError) as refused:
        outputs.make_writable_dir(layout.train_dir(root, MODEL))
    assert (refused.value.path, refused.value.reason) == ("train", Reason.LINK)
    after = etc.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )


def test_restart_sets_aside_a_linked_train_folder_without_following_it(
    root: JobPath, tmp_path: Path
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0\n")
    (root.root / MODEL).mkdir(parents=True)
    (root.root / MODEL / "train").symlink_to(etc)
    moved = outputs.set_aside_training(root, MODEL, 9)
    assert moved is not None and str(moved) == "set-aside/train-before-job-9"
    assert (root.root / MODEL / "set-aside" / "train-before-job-9").is_symlink()
    assert (etc / "passwd").read_text() == "root:x:0:0\n"
    assert outputs.set_aside_training(root, MODEL, 9) is None  # once per job


def test_probe_names_a_refused_file_instead_of_blocking(root: JobPath) -> None:
    train = root.root / MODEL / "train"
    train.mkdir(parents=True)
    os.mkfifo(train / "val.csv")
    facts: list[object] = []
    probing = threading.Thread(
        target=lambda: facts.append(
            outputs.probe(JobType.TRAIN, layout.train_dir(root, MODEL), None)
        ),
        daemon=True,
    )
    probing.start()
    probing.join(5)
    assert facts, "probe blocked on a FIFO"
    assert facts[0].refused == "train/val.csv is a FIFO, not a regular file"  # type: ignore[attr-defined]


def test_probe_counts_val_rows_in_blocks(root: JobPath) -> None:
    train = root.root / MODEL / "train"
    train.mkdir(parents=True)
    (train / "val.csv").write_bytes(b"epoch,val_loss\r\n1,0.5\r\n\r\n  \n2," + b"0" * 3_000_000)
    facts = outputs.probe(JobType.TRAIN, layout.train_dir(root, MODEL), None)
    assert facts.val_rows == 2 and facts.refused is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"epoch": 3, "checkpoint_epoch": 2}, (3, 2)),
        ({"epoch": 3}, (3, None)),
        ({"epoch": 10**20}, None),  # past the 32-bit column: no progress
        ({"epoch": -1}, None),
        ([1, 2], None),
        ("x", None),
    ],
)
def test_read_progress(root: JobPath, content: object, expected: object) -> None:
    train = root.root / MODEL / "train"
    train.mkdir(parents=True)
    (train / "progress.json").write_text(json.dumps(content))
    assert outputs.read_progress(layout.train_dir(root, MODEL)) == expected


def test_read_progress_of_a_fifo_or_a_link_is_none_at_once(root: JobPath) -> None:
    train = root.root / MODEL / "train"
    train.mkdir(parents=True)
    os.mkfifo(train / "progress.json")
    assert outputs.read_progress(layout.train_dir(root, MODEL)) is None
    (train / "progress.json").unlink()
    (train / "progress.json").symlink_to("/dev/zero")
    assert outputs.read_progress(layout.train_dir(root, MODEL)) is None
