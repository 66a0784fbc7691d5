"""trainer/train.py EVAL jobs."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import time
import zipfile
from pathlib import Path


def test_eval_writes_test_csv_and_results_zip(trainer, trained: Path, demo_dataset: Path) -> None:
    proc = trainer.run("EVAL", trained, demo_dataset, "--epoch", 4)
    assert proc.returncode == 0, proc.stderr
    test_dir = trained / "test"
    rows = trainer.rows(test_dir / "test.csv")
    assert len(rows) == 1
    assert list(rows[0]) == [
        "epoch",
        "test_loss",
        "test_accuracy",
        "acc_bird",
        "acc_cat",
        "acc_dog",
    ]
    assert rows[0]["epoch"] == "4"
    assert float(rows[0]["test_accuracy"]) > 0.7
    assert all(0.0 <= float(rows[0][c]) <= 1.0 for c in ("acc_bird", "acc_cat", "acc_dog"))

    with zipfile.ZipFile(test_dir / "results_epoch_4.zip") as zf:
        assert sorted(zf.namelist()) == ["predictions.csv", "summary.json", "test.csv"]
        assert zf.read("test.csv") == (test_dir / "test.csv").read_bytes()
        summary = json.loads(zf.read("summary.json"))
        preds = list(csv.DictReader(io.StringIO(zf.read("predictions.csv").decode())))
    assert summary["epoch"] == 4
    assert summary["n_samples"] == len(preds) == 60
    assert abs(summary["test_accuracy"] - float(rows[0]["test_accuracy"])) < 1e-6
    assert sum(map(sum, summary["confusion_matrix"])) == 60
    accuracy = sum(p["label"] == p["predicted"] for p in preds) / len(preds)
    assert abs(accuracy - summary["test_accuracy"]) < 1e-9


def test_eval_other_checkpoint_dir(
    trainer, trained: Path, demo_dataset: Path, tmp_path: Path
) -> None:
    proc = trainer.run(
        "EVAL",
        tmp_path / "eval-out",
        demo_dataset,
        "--epoch",
        2,
        "--checkpoint-dir",
        trained / "checkpoints",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "eval-out" / "test" / "results_epoch_2.zip").is_file()


def test_eval_missing_checkpoint_exits_2(
    trainer, trained: Path, demo_dataset: Path, tmp_path: Path
) -> None:
    proc = trainer.run("EVAL", trained, demo_dataset, "--epoch", 3)
    assert proc.returncode == 2
    assert "no checkpoint for epoch 3" in proc.stderr
    assert "epoch_0003.ckpt" in proc.stderr
    assert not (trained / "test" / "results_epoch_3.zip").exists()

    empty = trainer.run("EVAL", tmp_path / "none", demo_dataset, "--epoch", 1)
    assert empty.returncode == 2 and "no checkpoint for epoch 1" in empty.stderr


def test_eval_sigterm_exits_143_without_results(
    trainer, trained: Path, demo_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        trainer.argv(
            "EVAL",
            out,
            demo_dataset,
            "--epoch",
            4,
            "--checkpoint-dir",
            trained / "checkpoints",
            params={"eval_seconds": 30},
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143
    assert took < 3.0
    assert not (out / "test" / "test.csv").exists()
