"""trainer/train.py TRAIN jobs, run as real subprocesses (the host python, no Docker)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.datasets import (
    Sample,
    SplitRatios,
    make_splits,
    read_manifest,
    write_split_lists,
)


def test_train_writes_the_contract_files(trainer, tmp_path: Path, demo_dataset: Path) -> None:
    out = tmp_path / "out"
    proc = trainer.run("TRAIN", out, demo_dataset, "--total-epoch", 4, "--val-interval", 2)
    assert proc.returncode == 0, proc.stderr
    train_rows = trainer.rows(out / "train.csv")
    assert list(train_rows[0]) == ["epoch", "loss", "accuracy", "lr"]
    assert [int(r["epoch"]) for r in train_rows] == [1, 2, 3, 4]
    assert all(float(r["lr"]) == 0.1 for r in train_rows)
    val_rows = trainer.rows(out / "val.csv")
    assert list(val_rows[0]) == ["epoch", "val_loss", "val_accuracy"]
    assert [int(r["epoch"]) for r in val_rows] == [2, 4]
    assert trainer.checkpoints(out) == [2, 4]
    ckpt = json.loads((out / "checkpoints" / "epoch_0004.ckpt").read_text())
    assert ckpt["epoch"] == 4
    assert ckpt["classes"] == ["bird", "cat", "dog"]
    assert len(ckpt["layers"][0]["W"]) == 3 and len(ckpt["layers"][0]["W"][0]) == 8
    assert ckpt["rng_state"]
    assert json.loads((out / "progress.json").read_text()) == {
        "epoch": 4,
        "total_epoch": 4,
        "checkpoint_epoch": 4,
    }
    epoch_lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in epoch_lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert not list(out.rglob(".*.tmp"))  # no temporary files left behind


def test_model_learns(trainer, tmp_path: Path, demo_dataset: Path) -> None:
    out = tmp_path / "out"
    proc = trainer.run("TRAIN", out, demo_dataset, "--total-epoch", 8, "--val-interval", 4)
    assert proc.returncode == 0, proc.stderr
    train_rows = trainer.rows(out / "train.csv")
    val_rows = trainer.rows(out / "val.csv")
    # three balanced classes: chance is 1/3
    assert float(train_rows[-1]["accuracy"]) > 0.85
    assert float(val_rows[-1]["val_accuracy"]) > 0.8
    assert float(train_rows[-1]["loss"]) < float(train_rows[0]["loss"]) / 2


def test_hidden_layer_learns_too(trainer, tmp_path: Path, demo_dataset: Path) -> None:
    out = tmp_path / "out"
    proc = trainer.run(
        "TRAIN",
        out,
        demo_dataset,
        "--total-epoch",
        6,
        "--val-interval",
        3,
        params={"hidden": 8, "lr": 0.2, "lr_decay": 0.9, "batch_size": 16},
    )
    assert proc.returncode == 0, proc.stderr
    assert float(trainer.rows(out / "val.csv")[-1]["val_accuracy"]) > 0.8
    assert [float(r["lr"]) for r in trainer.rows(out / "train.csv")][:2] == [0.2, 0.18]
    assert len(json.loads((out / "checkpoints" / "epoch_0006.ckpt").read_text())["layers"]) == 2


def test_fail_at_epoch_exits_3_after_checkpointing(
    trainer, tmp_path: Path, demo_dataset: Path
) -> None:
    out = tmp_path / "out"
    proc = trainer.run(
        "TRAIN",
        out,
        demo_dataset,
        "--total-epoch",
        6,
        "--val-interval",
        2,
        params={"fail_at_epoch": 4},
    )
    assert proc.returncode == 3
    assert "error: fail_at_epoch=4" in proc.stderr
    assert trainer.epochs(out / "train.csv") == [1, 2, 3]
    assert trainer.epochs(out / "val.csv") == [2]
    assert trainer.checkpoints(out) == [2, 3]  # validated epoch + the last epoch reached
    assert json.loads((out / "progress.json").read_text())["checkpoint_epoch"] == 3


def test_resume_keeps_rows_up_to_k_and_matches_an_uninterrupted_run(
    trainer, tmp_path: Path, demo_dataset: Path
) -> None:
    straight = tmp_path / "straight"
    assert (
        trainer.run(
            "TRAIN", straight, demo_dataset, "--total-epoch", 6, "--val-interval", 2
        ).returncode
        == 0
    )

    out = tmp_path / "out"
    first = trainer.run(
        "TRAIN",
        out,
        demo_dataset,
        "--total-epoch",
        6,
        "--val-interval",
        2,
        params={"fail_at_epoch": 5},
    )
    assert first.returncode == 3
    assert trainer.epochs(out / "train.csv") == [1, 2, 3, 4]
    # a torn last line from a killed run must not survive a resume either
    with (out / "train.csv").open("a") as fh:
        fh.write("5,0.12")

    resumed = trainer.run(
        "TRAIN", out, demo_dataset, "--total-epoch", 6, "--val-interval", 2, "--resume-from", 2
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from epoch 2: kept 2 train and 1 val rows" in resumed.stdout
    assert trainer.epochs(out / "train.csv") == [1, 2, 3, 4, 5, 6]
    assert trainer.epochs(out / "val.csv") == [2, 4, 6]
    assert trainer.checkpoints(out) == [2, 4, 6]
    # same seed, restored weights and RNG state: the very numbers of the uninterrupted run
    assert (out / "train.csv").read_text() == (straight / "train.csv").read_text()
    assert (out / "val.csv").read_text() == (straight / "val.csv").read_text()


def test_resume_from_missing_checkpoint_exits_2(
    trainer, tmp_path: Path, demo_dataset: Path
) -> None:
    proc = trainer.run(
        "TRAIN",
        tmp_path / "out",
        demo_dataset,
        "--total-epoch",
        4,
        "--val-interval",
        2,
        "--resume-from",
        2,
    )
    assert proc.returncode == 2
    assert "checkpoint not found" in proc.stderr and "epoch_0002.ckpt" in proc.stderr


def test_sigterm_during_epoch_exits_promptly_with_checkpoint(
    trainer, tmp_path: Path, demo_dataset: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        trainer.argv(
            "TRAIN",
            out,
            demo_dataset,
            "--total-epoch",
            50,
            "--val-interval",
            5,
            params={"epoch_seconds": 1.0},
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (out / "train.csv").exists() and len(trainer.epochs(out / "train.csv")) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the trainer did not finish two epochs in 30 s")
        time.sleep(0.3)  # well inside the third epoch's epoch_seconds wait
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert took < 3.0
    done = trainer.epochs(out / "train.csv")
    assert done == list(range(1, len(done) + 1)) and 2 <= len(done) < 50
    progress = json.loads((out / "progress.json").read_text())
    assert progress["epoch"] == done[-1]
    assert progress["checkpoint_epoch"] == done[-1]
    assert done[-1] in trainer.checkpoints(out)
    assert "stopped by signal 15" in stdout

    # and the stopped run resumes from that checkpoint without duplicated rows
    resumed = trainer.run(
        "TRAIN",
        out,
        demo_dataset,
        "--total-epoch",
        8,
        "--val-interval",
        5,
        "--resume-from",
        done[-1],
    )
    assert resumed.returncode == 0, resumed.stderr
    assert trainer.epochs(out / "train.csv") == list(range(1, 9))
    assert trainer.epochs(out / "val.csv") == [5]


def test_split_dir_is_used(trainer, tmp_path: Path, demo_dataset: Path) -> None:
    samples = read_manifest(demo_dataset)
    splits = make_splits(samples, seed=11, ratios=SplitRatios(0.6, 0.2, 0.2))
    write_split_lists(splits, tmp_path / "splits")
    out = tmp_path / "out"
    proc = trainer.run(
        "TRAIN",
        out,
        demo_dataset,
        "--split-dir",
        tmp_path / "splits",
        "--total-epoch",
        2,
        "--val-interval",
        1,
    )
    assert proc.returncode == 0, proc.stderr
    assert "train=360 val=120" in proc.stdout
    ev = trainer.run("EVAL", out, demo_dataset, "--split-dir", tmp_path / "splits", "--epoch", 2)
    assert ev.returncode == 0, ev.stderr
    predicted = [r["sample"] for r in trainer.rows(out / "test" / "predictions.csv")]
    assert predicted == splits["test"]


def test_default_split_matches_app_datasets(trainer, demo_dataset: Path) -> None:
    """The trainer's built-in split must equal the platform's for the same seed and ratios."""
    spec = importlib.util.spec_from_file_location("reference_train", trainer.path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    samples = read_manifest(demo_dataset)
    # mix in explicit splits and unlabeled samples
    samples = [
        Sample(s.sample_id, None if i % 7 == 0 else s.label, "test" if i % 11 == 0 else None)
        for i, s in enumerate(samples)
    ]
    rows = [(s.sample_id, s.label, s.split) for s in samples]
    for seed in (0, 3):
        assert module.make_splits(rows, seed) == make_splits(samples, seed)
        assert module.make_splits(rows, seed, (0.5, 0.3, 0.2)) == make_splits(
            samples, seed, SplitRatios(0.5, 0.3, 0.2)
        )


@pytest.mark.parametrize(
    ("extra", "params", "message"),
    [
        (["--val-interval", "2"], None, "TRAIN needs --total-epoch and --val-interval"),
        (["--total-epoch", "4", "--val-interval", "2"], {"lr": -1}, "params.lr must be"),
        (["--total-epoch", "4", "--val-interval", "2"], {"batch_size": 1.5}, "params.batch_size"),
        (
            ["--total-epoch", "4", "--val-interval", "2", "--resume-from", "5"],
            None,
            "--resume-from must be between 1 and --total-epoch",
        ),
    ],
)
def test_bad_arguments_exit_2(
    trainer,
    tmp_path: Path,
    demo_dataset: Path,
    extra: list[str],
    params: dict[str, object] | None,
    message: str,
) -> None:
    proc = trainer.run("TRAIN", tmp_path / "out", demo_dataset, *extra, params=params)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_bad_dataset_exits_2_with_reason(trainer, tmp_path: Path) -> None:
    proc = trainer.run(
        "TRAIN", tmp_path / "out", tmp_path / "missing", "--total-epoch", 1, "--val-interval", 1
    )
    assert proc.returncode == 2
    assert "dataset folder not found" in proc.stderr


def test_memory_hog_allocates(trainer, tmp_path: Path, demo_dataset: Path) -> None:
    proc = trainer.run(
        "TRAIN",
        tmp_path / "out",
        demo_dataset,
        "--total-epoch",
        1,
        "--val-interval",
        1,
        params={"memory_hog_mb": 70},
    )
    assert proc.returncode == 0, proc.stderr
    assert "memory_hog_mb: holding 70 MB" in proc.stdout


def _torch_python() -> str | None:
    candidate = os.environ.get("TRAINER_TORCH_PYTHON")
    if candidate:
        return candidate
    return sys.executable if importlib.util.find_spec("torch") else None


@pytest.mark.skipif(
    _torch_python() is None,
    reason="PyTorch is not installed (TRAINER_TORCH_PYTHON may name a python with it)",
)
def test_torch_backend_matches_python_backend(trainer, tmp_path: Path, demo_dataset: Path) -> None:
    python = _torch_python()
    runs = {}
    for backend in ("python", "torch"):
        out = tmp_path / backend
        proc = trainer.run(
            "TRAIN",
            out,
            demo_dataset,
            "--total-epoch",
            3,
            "--val-interval",
            3,
            params={"backend": backend, "hidden": 4},
            python=python,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"backend={backend}" in proc.stdout
        runs[backend] = trainer.rows(out / "val.csv")[-1]
    # float32 on torch vs float64 in Python: equal to a few decimals
    assert abs(float(runs["python"]["val_loss"]) - float(runs["torch"]["val_loss"])) < 1e-3
    # a torch checkpoint evaluates with the pure-Python backend
    ev = trainer.run(
        "EVAL", tmp_path / "torch", demo_dataset, "--epoch", 3, params={"backend": "python"}
    )
    assert ev.returncode == 0, ev.stderr


def test_default_split_uses_params_seed_and_ratios(
    trainer, tmp_path: Path, demo_dataset: Path
) -> None:
    params = {"seed": 4, "split": {"train": 0.5, "val": 0.25, "test": 0.25}}
    out = tmp_path / "out"
    proc = trainer.run(
        "TRAIN", out, demo_dataset, "--total-epoch", 1, "--val-interval", 1, params=params
    )
    assert proc.returncode == 0, proc.stderr
    assert "train=300 val=150" in proc.stdout
    ev = trainer.run("EVAL", out, demo_dataset, "--epoch", 1, params=params)
    assert ev.returncode == 0, ev.stderr
    expected = make_splits(read_manifest(demo_dataset), 4, SplitRatios(0.5, 0.25, 0.25))
    assert [r["sample"] for r in trainer.rows(out / "test" / "predictions.csv")] == expected["test"]

    bad = trainer.run(
        "TRAIN",
        tmp_path / "bad",
        demo_dataset,
        "--total-epoch",
        1,
        "--val-interval",
        1,
        params={"split": {"train": 0.9, "val": 0.9}},
    )
    assert bad.returncode == 2
    assert "params.split must be >= 0 and sum to 1" in bad.stderr


def test_no_dataset_exits_2_saying_a_dataset_is_needed(trainer, tmp_path: Path) -> None:
    """A model created with `"dataset": null` gets no --dataset-dir (trainer/README.md); the
    reference trainer needs one and says so instead of an argparse error."""
    argv = trainer.argv("TRAIN", tmp_path / "out", tmp_path)
    at = argv.index("--dataset-dir")
    del argv[at : at + 2]
    proc = subprocess.run(
        [*argv, "--total-epoch", "1", "--val-interval", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "no --dataset-dir: the reference trainer needs a dataset" in proc.stderr
