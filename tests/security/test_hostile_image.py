"""The attacker itself (tests/security/hostile/hostile.py), run on the host without Docker: each
kind of case plants what it says, and otherwise behaves like the reference trainer, so a
hostile case that "passes" never does so because the attack silently did not happen.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.datasets import (
    SplitRatios,
    generate_demo_dataset,
    make_splits,
    read_manifest,
    write_split_lists,
)
from tests.security.test_hostile_trainer import CASES, EVAL_FILES, SPECIAL_CASES

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "security" / "hostile" / "hostile.py"


def run_hostile(job: str, model_dir: Path, dataset: Path, case: str, *extra: str) -> int:
    out = model_dir / ("train" if job == "TRAIN" else "eval-2")
    out.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "tmp").exists():  # the worker writes the split lists before a run
        splits = make_splits(read_manifest(dataset), 0, SplitRatios.from_mapping(None))
        write_split_lists(splits, model_dir / "tmp")
    argv = [
        sys.executable, str(HOSTILE),
        "--job-type", job, "--output-dir", str(out), "--dataset-dir", str(dataset),
        "--split-dir", str(model_dir / "tmp"),
        "--total-epoch", "2", "--val-interval", "1",
        "--params", json.dumps({"hostile_case": case}),
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "HOSTILE_HOLD_S": "0"}
    return subprocess.run(argv, env=env, capture_output=True, timeout=120).returncode


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "demo"
    generate_demo_dataset(path)
    return path


def test_every_case_names_a_kind_and_file_the_attacker_knows() -> None:
    source = HOSTILE.read_text()
    for case in CASES:
        if case in SPECIAL_CASES:
            assert f'"{case}"' in source, case
        else:
            kind, _, name = case.partition(":")
            assert f'"{kind}"' in source and f'"{name}"' in source, case


@pytest.mark.parametrize(
    ("case", "relative", "check"),
    [
        ("link-environ:val.csv", "train/val.csv", "link:/proc/self/environ"),
        ("link-passwd:tmp-train.txt", "tmp/train.txt", "link:/etc/passwd"),
        ("link-zero:progress.json", "train/progress.json", "link:/dev/zero"),
        ("fifo:train.csv", "train/train.csv", "fifo"),
        ("dir:checkpoints", "train/checkpoints", "dir"),
        ("sparse-train-csv", "train/train.csv", "sparse"),
    ],
)
def test_train_cases_plant_what_they_name(
    tmp_path: Path, dataset: Path, case: str, relative: str, check: str
) -> None:
    assert run_hostile("TRAIN", tmp_path, dataset, case) == 0
    path = tmp_path / relative
    info = path.lstat()
    if check.startswith("link:"):
        assert stat.S_ISLNK(info.st_mode) and os.readlink(path) == check[5:]
    elif check == "fifo":
        assert stat.S_ISFIFO(info.st_mode)
    elif check == "dir":
        assert stat.S_ISDIR(info.st_mode)
    else:
        assert info.st_size == 5 * 1024**3 and info.st_blocks * 512 < 1024**2  # sparse
    # Everything else is the reference trainer's valid output.
    if relative != "train/val.csv":
        assert (tmp_path / "train" / "val.csv").read_text().count("\n") == 3


def test_an_eval_case_plants_after_a_clean_training(tmp_path: Path, dataset: Path) -> None:
    case = "fifo:results-zip"
    assert "results-zip" in EVAL_FILES
    assert run_hostile("TRAIN", tmp_path, dataset, case) == 0
    assert (tmp_path / "train" / "checkpoints" / "epoch_0002.ckpt").is_file()
    code = run_hostile(
        "EVAL", tmp_path, dataset, case,
        "--epoch", "2", "--checkpoint-dir", str(tmp_path / "train" / "checkpoints"),
    )
    assert code == 0
    test_dir = tmp_path / "eval-2" / "test"
    assert stat.S_ISFIFO((test_dir / "results_epoch_2.zip").lstat().st_mode)
    assert (test_dir / "test.csv").is_file()


@pytest.mark.parametrize("case", ["log-nul", "log-bad-utf8"])
def test_log_cases_write_hostile_bytes_and_exit_1(tmp_path: Path, dataset: Path, case: str) -> None:
    out = tmp_path / "train"
    out.mkdir()
    result = subprocess.run(
        [
            sys.executable, str(HOSTILE), "--job-type", "TRAIN", "--output-dir", str(out),
            "--dataset-dir", str(dataset), "--total-epoch", "1", "--val-interval", "1",
            "--params", json.dumps({"hostile_case": case}),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT / "trainer")},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 1
    bad = b"\x00" if case == "log-nul" else b"\xff\xfe"
    assert bad in result.stdout and bad in result.stderr
