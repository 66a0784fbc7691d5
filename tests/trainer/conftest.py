"""Fixtures for running trainer/train.py as a real subprocess on the generated demo dataset.

Helpers come as the `trainer` fixture (not imported from here) so the tests work with any
pytest import mode and beside other folders' conftest.py files.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.datasets import generate_demo_dataset

REPO = Path(__file__).resolve().parents[2]


class Trainer:
    """Runs trainer/train.py with the host python and reads what it wrote."""

    path = REPO / "trainer" / "train.py"
    repo = REPO

    def argv(
        self,
        job: str,
        out: Path,
        dataset: Path,
        *extra: str | int | Path,
        params: dict[str, Any] | None = None,
        python: str | None = None,
    ) -> list[str]:
        argv = [
            python or sys.executable,
            str(self.path),
            "--job-type",
            job,
            "--output-dir",
            str(out),
            "--dataset-dir",
            str(dataset),
            *map(str, extra),
        ]
        if params is not None:
            argv += ["--params", json.dumps(params)]
        return argv

    def run(
        self,
        job: str,
        out: Path,
        dataset: Path,
        *extra: str | int | Path,
        params: dict[str, Any] | None = None,
        timeout: float = 120,
        python: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(job, out, dataset, *extra, params=params, python=python),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @staticmethod
    def rows(path: Path) -> list[dict[str, str]]:
        with path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def epochs(self, path: Path) -> list[int]:
        return [int(r["epoch"]) for r in self.rows(path)]

    @staticmethod
    def checkpoints(out: Path) -> list[int]:
        return sorted(int(p.stem.split("_")[1]) for p in (out / "checkpoints").glob("epoch_*.ckpt"))


@pytest.fixture(scope="session")
def trainer() -> Trainer:
    return Trainer()


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(tmp_path_factory.mktemp("datasets") / "demo")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path, trainer: Trainer) -> Path:
    """One finished TRAIN run (4 epochs, validation every 2) shared by the EVAL tests."""
    out = tmp_path_factory.mktemp("trained")
    proc = trainer.run("TRAIN", out, demo_dataset, "--total-epoch", 4, "--val-interval", 2)
    assert proc.returncode == 0, proc.stderr
    return out
