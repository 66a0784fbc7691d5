"""The reference trainer image: built by scripts/build-images.sh, run with `docker run`.

Skipped (with the reason) only when no Docker engine answers `docker info`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "trainyard/trainer:latest"


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        proc = subprocess.run(
            ["docker", "info"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"no Docker engine answers `docker info`: {last}"
    return None


DOCKER_PROBLEM = _docker_problem()
pytestmark = pytest.mark.skipif(DOCKER_PROBLEM is not None, reason=DOCKER_PROBLEM or "")


@pytest.fixture(scope="module")
def image() -> str:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-images.sh"), "--no-examples"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "trainyard/trainer:latest" in proc.stdout
    # a second run finds both images and builds nothing
    again = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-images.sh"), "--no-examples"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "exists, keeping it" in again.stdout and "is up to date" in again.stdout
    return IMAGE


@pytest.fixture
def dirs(tmp_path: Path, demo_dataset: Path) -> tuple[Path, Path]:
    """A readable copy of the demo dataset and a world-writable output folder."""
    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    return data, out


def docker_run(
    image: str, data: Path, out: Path, *args: str, user: str | None = None, name: str | None = None
) -> list[str]:
    argv = ["docker", "run", "--rm", "-v", f"{data}:/data:ro", "-v", f"{out}:/out"]
    if user:
        argv += ["--user", user]
    if name:
        argv += ["--name", name]
    return [*argv, image, "--output-dir", "/out", "--dataset-dir", "/data", *args]


def test_image_metadata(image: str) -> None:
    proc = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, text=True, check=True
    )
    config = json.loads(proc.stdout)[0]["Config"]
    assert config["User"] == "1000"
    assert config["Entrypoint"] == ["python3", "/opt/trainer/train.py"]
    who = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", image],
        capture_output=True,
        text=True,
        check=True,
    )
    assert who.stdout.startswith("uid=1000(trainer)")


def test_train_and_eval_in_the_container(image: str, dirs: tuple[Path, Path], trainer) -> None:
    data, out = dirs
    user = f"{os.getuid()}:{os.getgid()}"
    proc = subprocess.run(
        docker_run(
            image,
            data,
            out,
            "--job-type",
            "TRAIN",
            "--total-epoch",
            "2",
            "--val-interval",
            "1",
            user=user,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "epoch 2/2" in proc.stdout
    assert trainer.epochs(out / "train.csv") == [1, 2]
    assert trainer.epochs(out / "val.csv") == [1, 2]
    assert trainer.checkpoints(out) == [1, 2]
    assert (out / "train.csv").stat().st_uid == os.getuid()
    assert float(trainer.rows(out / "val.csv")[-1]["val_accuracy"]) > 0.6

    # EVAL as the image's own non-root user (uid 1000) into the world-writable folder
    ev = subprocess.run(
        docker_run(image, data, out, "--job-type", "EVAL", "--epoch", "2"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ev.returncode == 0, ev.stdout + ev.stderr
    assert trainer.rows(out / "test" / "test.csv")[0]["epoch"] == "2"
    assert (out / "test" / "results_epoch_2.zip").stat().st_uid == 1000

    missing = subprocess.run(
        docker_run(image, data, out, "--job-type", "EVAL", "--epoch", "9"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 2
    assert "no checkpoint for epoch 9" in missing.stderr


def test_docker_stop_ends_the_trainer_promptly(
    image: str, dirs: tuple[Path, Path], trainer
) -> None:
    data, out = dirs
    name = f"trainyard-test-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen(
        docker_run(
            image,
            data,
            out,
            "--job-type",
            "TRAIN",
            "--total-epoch",
            "20",
            "--val-interval",
            "5",
            "--params",
            '{"epoch_seconds": 30}',
            name=name,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ((out / "train.csv").exists() and trainer.epochs(out / "train.csv")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no epoch finished in 60 s"
            time.sleep(0.1)
        started = time.monotonic()
        subprocess.run(
            ["docker", "stop", "-t", "20", name], capture_output=True, check=True, timeout=60
        )
        proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            subprocess.run(["docker", "kill", name], capture_output=True, check=False)
            proc.kill()
            proc.wait()
    # SIGTERM reached the trainer (PID 1 in the container) and it exited by itself
    assert proc.returncode == 143
    assert took < 10
    assert trainer.epochs(out / "train.csv") == [1]
    assert trainer.checkpoints(out) == [1]
