"""Issue 10 without containers: hostile files planted straight into a job's folder, read by the
API (Flask test client) and by the completion task, on the real PostgreSQL.

What a container would plant (tests/security/hostile) is planted here by the test itself, so
each reader is checked alone and fast. The targets are the ones that cannot hurt this machine:
/etc/passwd and /proc/self/environ are only read, a FIFO is unblocked by the test when a reader
hangs on it, and a folder link points at a canary folder of the test, never at /etc. (/dev/zero
is left to test_hostile_trainer.py, whose readers run under a memory limit.)

The canaries: /etc/passwd's `root:x:0:0`; of this process's environment (what
/proc/self/environ shows the API here) `PATH=/` and the database credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.datasets import generate_demo_dataset
from app.db.models import Job, Model
from app.domain import layout
from tests.conftest import TEST_DATABASE_URL
from tests.integration.helpers import create_model
from workers.completion import complete_job

#: A reader that has not answered by then is taken as hung on a FIFO.
READ_BOUND_S = 10.0
OUTSIDE_SECRET = "outside-the-job-folder-canary-6d1f"
FORBIDDEN = {
    b"root:x:0:0": "/etc/passwd content",
    b"PATH=/": "an environment block (PATH=/)",
    (TEST_DATABASE_URL.split("//", 1)[1].split("@", 1)[0] + "@").encode(): "DB credentials",
    OUTSIDE_SECRET.encode(): "a file outside the job folder",
}
CLEAR_CODE = re.compile(r"^[A-Z][A-Z0-9_]{2,}(:|$)")
KINDS = ("link-passwd", "link-environ", "fifo", "dir")
TARGETS = {"link-passwd": "/etc/passwd", "link-environ": "/proc/self/environ"}


def plant(path: Path, kind: str) -> None:
    """Replace what is at `path` with the hostile thing, as a job could."""
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in TARGETS:
        path.symlink_to(TARGETS[kind])
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
        (path / "inside.txt").write_text("a folder where a file belongs\n")
    else:
        raise AssertionError(kind)


def unblock_fifos(folder: Path) -> None:
    """Give every reader blocked on a FIFO under `folder` its end of file."""
    for path in folder.rglob("*"):
        if path.is_fifo():
            with contextlib.suppress(OSError):  # no reader: nothing blocks on it
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def bounded(call: Callable[[], Any], folder: Path, what: str) -> Any:
    """Run `call`; if it has not returned within READ_BOUND_S, unblock FIFOs and fail."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(READ_BOUND_S)
    hung = thread.is_alive()
    while thread.is_alive():
        unblock_fifos(folder)
        thread.join(0.5)
    assert not hung, f"{what} hung for {READ_BOUND_S:g} s on a planted FIFO"
    if "error" in result:
        raise result["error"]
    return result["value"]


def assert_clean_answer(response: Any, what: str) -> None:
    body = response.get_data()
    leaks = [meaning for needle, meaning in FORBIDDEN.items() if needle in body]
    assert not leaks, f"{what} -> {response.status_code} leaks {leaks}: {body[:300]!r}"
    assert response.status_code < 500, f"{what} -> {response.status_code}: {body[:300]!r}"


@pytest.fixture
def model(client: FlaskClient, settings: Settings) -> dict[str, Any]:
    generate_demo_dataset(settings.dataset_root / "demo")
    return create_model(client, dataset="demo", params={"total_epoch": 1, "val_interval": 1})


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A folder outside every job folder, with a secret in the files a link would expose."""
    folder = tmp_path / "outside"
    folder.mkdir()
    for name in ("train.txt", "val.txt", "test.txt", "test.csv", "summary.json"):
        (folder / name).write_text(f"{OUTSIDE_SECRET}\n")
    before = {p.name: (p.stat().st_uid, p.read_bytes()) for p in folder.iterdir()}
    yield folder
    after = {p.name: (p.stat().st_uid, p.read_bytes()) for p in folder.iterdir()}
    assert after == before, "something wrote into the folder a planted link pointed at"
    assert folder.stat().st_uid == os.geteuid(), "the folder a planted link pointed at was chowned"


# -- split lists: counts and create-tmp -------------------------------------------------------


@pytest.mark.parametrize("name", ["train.txt", "val.txt", "test.txt"])
@pytest.mark.parametrize("kind", KINDS)
def test_counts_reads_no_planted_split_list(
    client: FlaskClient, settings: Settings, model: dict[str, Any], kind: str, name: str
) -> None:
    uid = model["uuid"]
    assert client.post(f"/api/train/create-tmp/{uid}", json={}).status_code == 200
    folder = layout.split_dir(settings.output_root, uid)
    plant(folder / name, kind)
    response = bounded(lambda: client.get(f"/api/train/counts/{uid}"), folder, "counts")
    assert_clean_answer(response, f"counts with tmp/{name} as {kind}")


def test_counts_and_create_tmp_do_not_follow_a_linked_tmp_folder(
    client: FlaskClient, settings: Settings, model: dict[str, Any], outside: Path
) -> None:
    uid = model["uuid"]
    folder = layout.split_dir(settings.output_root, uid)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(outside)
    assert_clean_answer(client.get(f"/api/train/counts/{uid}"), "counts with tmp -> outside")
    assert_clean_answer(
        client.post(f"/api/train/create-tmp/{uid}", json={}), "create-tmp with tmp -> outside"
    )


@pytest.mark.parametrize("kind", ["dir", "fifo"])
def test_create_tmp_with_a_planted_split_list_is_no_server_error(
    client: FlaskClient, settings: Settings, model: dict[str, Any], kind: str
) -> None:
    uid = model["uuid"]
    assert client.post(f"/api/train/create-tmp/{uid}", json={}).status_code == 200
    folder = layout.split_dir(settings.output_root, uid)
    plant(folder / "train.txt", kind)
    response = bounded(
        lambda: client.post(f"/api/train/create-tmp/{uid}", json={}), folder, "create-tmp"
    )
    assert_clean_answer(response, f"create-tmp with tmp/train.txt as {kind}")
    assert str(settings.output_root) not in response.get_data(as_text=True), (
        "an absolute host path in an API answer"
    )


# -- results view and download ----------------------------------------------------------------


def _successful_eval(db: sessionmaker[Session], settings: Settings, model: dict[str, Any]) -> Path:
    """A successful EVAL job of epoch 1 with valid outputs; returns its test/ folder."""
    with db.begin() as session:
        job = Job(
            model_id=model["id"],
            job_type="EVAL",
            attempt=1,
            status_cd="SUCCESS",
            params={"epoch": 1},
            image="trainyard/trainer:latest",
            resources={},
        )
        session.add(job)
        session.flush()
        job_id = job.id
    test_dir = layout.eval_dir(settings.output_root, model["uuid"], job_id) / "test"
    test_dir.mkdir(parents=True)
    (test_dir / "test.csv").write_text("epoch,test_loss,test_accuracy\n1,0.25,0.9\n")
    (test_dir / "summary.json").write_text(json.dumps({"epoch": 1, "test_loss": 0.25}))
    (test_dir / "results_epoch_1.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    return test_dir


@pytest.mark.parametrize("name", ["test.csv", "summary.json", "results_epoch_1.zip"])
@pytest.mark.parametrize("kind", KINDS)
def test_results_and_download_read_no_planted_file(
    client: FlaskClient,
    db: sessionmaker[Session],
    settings: Settings,
    model: dict[str, Any],
    kind: str,
    name: str,
) -> None:
    uid = model["uuid"]
    test_dir = _successful_eval(db, settings, model)
    plant(test_dir / name, kind)
    for path in (f"/api/models/{uid}/results", f"/api/models/{uid}/results/download"):
        response = bounded(lambda path=path: client.get(path), test_dir, path)
        assert_clean_answer(response, f"{path} with {name} as {kind}")


def test_results_do_not_follow_a_linked_test_folder(
    client: FlaskClient,
    db: sessionmaker[Session],
    settings: Settings,
    model: dict[str, Any],
    outside: Path,
) -> None:
    uid = model["uuid"]
    test_dir = _successful_eval(db, settings, model)
    for child in test_dir.iterdir():
        child.unlink()
    test_dir.rmdir()
    test_dir.symlink_to(outside)
    for path in (f"/api/models/{uid}/results", f"/api/models/{uid}/results/download"):
        assert_clean_answer(client.get(path), f"{path} with test/ -> outside")


# -- the completion task (worker side, no container) ------------------------------------------


def _ended_train_job(db: sessionmaker[Session], settings: Settings, model: dict[str, Any]) -> int:
    """A TRAIN job whose container ended with exit 0, awaiting its judgement; valid outputs."""
    with db.begin() as session:
        job = Job(
            model_id=model["id"],
            job_type="TRAIN",
            attempt=1,
            status_cd="RUNNING",
            params={"total_epoch": 1, "val_interval": 1},
            image="trainyard/trainer:latest",
            resources={},
            node="hostile-node",
            container_name="trainyard-job-hostile",
            started_dttm=datetime.now(UTC),
            container_ended_dttm=datetime.now(UTC),
            container_exit_code=0,
            container_missing=False,
        )
        session.add(job)
        session.flush()
        job_id = job.id
        session.execute(
            update(Model)
            .where(Model.id == model["id"])
            .values(
                current_attempt_id=job_id,
                step1_state="IN_PROGRESS",
                status_cd="IN_PROGRESS",
                step1_strt_dttm=datetime.now(UTC),
            )
        )
    train_dir = layout.train_dir(settings.output_root, model["uuid"])
    train_dir.mkdir(parents=True)
    (train_dir / "train.csv").write_text("epoch,loss,accuracy,lr\n1,0.5,0.8,0.1\n")
    (train_dir / "val.csv").write_text("epoch,val_loss,val_accuracy\n1,0.4,0.85\n")
    return job_id


def _judge(
    db: sessionmaker[Session], settings: Settings, job_id: int, folder: Path
) -> tuple[str, str | None]:
    """complete_job, bounded; then the job's status and the model's last_error."""
    bounded(lambda: complete_job(db, settings, None, job_id), folder, "complete_job")
    with db() as session:
        job = session.get(Job, job_id)
        assert job is not None
        last_error = session.scalar(select(Model.last_error).where(Model.id == job.model_id))
        return job.status_cd, last_error


@pytest.mark.parametrize("name", ["train.csv", "val.csv"])
@pytest.mark.parametrize("kind", KINDS)
def test_completion_of_a_planted_metrics_file_ends_the_job_with_a_code(
    db: sessionmaker[Session], settings: Settings, model: dict[str, Any], kind: str, name: str
) -> None:
    job_id = _ended_train_job(db, settings, model)
    train_dir = layout.train_dir(settings.output_root, model["uuid"])
    plant(train_dir / name, kind)
    status, last_error = _judge(db, settings, job_id, train_dir)
    assert status in ("FAILED", "ERROR"), (status, last_error)
    assert last_error and CLEAR_CODE.match(last_error), last_error
    leaks = [meaning for needle, meaning in FORBIDDEN.items() if needle in last_error.encode()]
    assert not leaks, f"last_error leaks {leaks}: {last_error[:300]!r}"


@pytest.mark.parametrize(
    "bad", [b"lo\x00ss", b"lo\xff\xc3\x28ss"], ids=["nul", "invalid-utf8"]
)
def test_completion_of_a_hostile_csv_header_ends_the_job_with_a_code(
    db: sessionmaker[Session], settings: Settings, model: dict[str, Any], bad: bytes
) -> None:
    job_id = _ended_train_job(db, settings, model)
    train_dir = layout.train_dir(settings.output_root, model["uuid"])
    (train_dir / "train.csv").write_bytes(b"epoch," + bad + b",accuracy,lr\n1,0.5,0.8,0.1\n")
    status, last_error = _judge(db, settings, job_id, train_dir)
    assert status in ("SUCCESS", "FAILED", "ERROR"), (status, last_error)
    if status != "SUCCESS":
        assert last_error and CLEAR_CODE.match(last_error), last_error
        assert "\x00" not in last_error
