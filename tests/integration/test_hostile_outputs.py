"""A job's files are hostile input (issue 10): what a training container plants in its own
output folder — links to secrets, FIFOs, folders where files belong, NUL bytes — must not leak
through the API, block a worker or make a database write fail. Real PostgreSQL and Redis; the
files are planted by hand, as a hostile trainer would (no container needed)."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.datasets import generate_demo_dataset
from app.db.models import Job, MetricSeries, Model
from app.db.session import transaction
from app.domain import layout
from app.domain.transitions import JobEvent, JobObservation
from app.services.observations import record_observation
from tests.integration.helpers import create_model
from workers.completion import complete_job
from workers.container_writes import claim, record_end

SECRET = "s3cr3t-token-of-the-api-process"


@pytest.fixture(autouse=True)
def _secret_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # /proc/self/environ of this (API) process then holds it, as it would API_TOKEN.
    monkeypatch.setenv("API_TOKEN_UNDER_TEST", SECRET)
    os.environ["API_TOKEN_UNDER_TEST"] = SECRET


def _model_dir(settings: Settings, uid: str) -> Path:
    return layout.model_dir(settings.output_root, uid)


def _no_leak(response: Any, settings: Settings) -> None:
    body = response.get_data(as_text=True)
    assert SECRET not in body
    assert "root:x:0:0" not in body
    assert str(settings.output_root) not in body and "/proc/" not in body


@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/passwd", "/dev/zero"])
def test_counts_refuses_a_split_list_linked_elsewhere(
    client: FlaskClient, settings: Settings, target: str
) -> None:
    generate_demo_dataset(settings.dataset_root / "demo", n_samples=30)
    model = create_model(client, dataset="demo")
    tmp = layout.split_dir(settings.output_root, model["uuid"])
    tmp.mkdir(parents=True)
    for name in ("train", "val", "test"):
        (tmp / f"{name}.txt").symlink_to(target)

    response = client.get(f"/api/train/counts/{model['uuid']}")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error == {
        "code": "DATASET_INVALID",
        "message": "tmp/train.txt is a symbolic link (links are not followed)",
    }
    _no_leak(response, settings)


def test_counts_refuses_a_split_folder_linked_elsewhere(
    client: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    generate_demo_dataset(settings.dataset_root / "demo", n_samples=30)
    model = create_model(client, dataset="demo")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "train.txt").write_text(SECRET + "\n")
    _model_dir(settings, model["uuid"]).mkdir(parents=True)
    layout.split_dir(settings.output_root, model["uuid"]).symlink_to(elsewhere)

    counts = client.get(f"/api/train/counts/{model['uuid']}")
    assert counts.status_code == 409
    message = counts.get_json()["error"]["message"]
    assert message == "tmp is a symbolic link (links are not followed)"
    _no_leak(counts, settings)
    created = client.post(f"/api/train/create-tmp/{model['uuid']}")
    assert created.status_code == 409
    _no_leak(created, settings)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["train.txt"]  # nothing written there


def test_a_long_bad_sample_id_is_quoted_short(client: FlaskClient, settings: Settings) -> None:
    generate_demo_dataset(settings.dataset_root / "demo", n_samples=30)
    model = create_model(client, dataset="demo")
    tmp = layout.split_dir(settings.output_root, model["uuid"])
    tmp.mkdir(parents=True)
    (tmp / "train.txt").write_text(SECRET * 20 + "\n")
    (tmp / "val.txt").write_text("")
    (tmp / "test.txt").write_text("")
    response = client.get(f"/api/train/counts/{model['uuid']}")
    assert response.status_code == 409
    message = response.get_json()["error"]["message"]
    assert SECRET * 2 not in message and len(message) < 200, message


def test_create_tmp_answers_a_path_relative_to_the_model_folder(
    client: FlaskClient, settings: Settings
) -> None:
    generate_demo_dataset(settings.dataset_root / "demo", n_samples=30)
    model = create_model(client, dataset="demo")
    created = client.post(f"/api/train/create-tmp/{model['uuid']}")
    assert created.status_code == 200
    assert created.get_json()["data"]["splitDir"] == "tmp"
    _no_leak(created, settings)


def test_a_dataset_error_names_no_host_path(client: FlaskClient, settings: Settings) -> None:
    (settings.dataset_root / "empty").mkdir(parents=True)
    model = create_model(client, dataset="empty")
    response = client.get(f"/api/train/counts/{model['uuid']}")
    assert response.status_code == 409
    assert response.get_json()["error"]["message"] == (
        "DATASET_ROOT/empty/manifest.csv: manifest not found"
    )


def _successful_eval(db: sessionmaker[Session], model_id: int, epoch: int = 2) -> int:
    with db.begin() as session:
        job = Job(
            model_id=model_id,
            job_type="EVAL",
            attempt=1,
            status_cd="SUCCESS",
            params={"epoch": epoch},
            image="trainyard/trainer:latest",
            resources={},
        )
        session.add(job)
        session.flush()
        return job.id


def test_results_view_and_download_refuse_links(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    model = create_model(client)
    uid = model["uuid"]
    job_id = _successful_eval(db, model["id"])
    test_dir = layout.eval_dir(settings.output_root, uid, job_id) / "test"
    test_dir.mkdir(parents=True)
    (test_dir / "test.csv").symlink_to("/proc/self/environ")
    (test_dir / "summary.json").symlink_to("/etc/passwd")
    outside = tmp_path / "secret.zip"
    outside.write_text(SECRET)
    layout.results_zip(test_dir.parent, 2).symlink_to(outside)

    view = client.get(f"/api/models/{uid}/results")
    assert view.status_code == 200
    data = view.get_json()["data"]
    assert data["summary"] is None and data["rows"] == [] and data["downloadAvailable"] is False
    assert data["problems"] == [
        f"eval-{job_id}/test/summary.json is a symbolic link (links are not followed).",
        f"eval-{job_id}/test/test.csv is a symbolic link (links are not followed).",
        f"eval-{job_id}/test/results_epoch_2.zip is a symbolic link (links are not followed).",
    ]
    _no_leak(view, settings)

    download = client.get(f"/api/models/{uid}/results/download")
    assert download.status_code == 409
    assert download.get_json()["error"]["code"] == "RESULTS_FILE_REFUSED"
    _no_leak(download, settings)


def test_results_view_survives_a_fifo_and_a_folder(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    model = create_model(client)
    job_id = _successful_eval(db, model["id"])
    test_dir = layout.eval_dir(settings.output_root, model["uuid"], job_id) / "test"
    test_dir.mkdir(parents=True)
    os.mkfifo(test_dir / "test.csv")
    (test_dir / "summary.json").mkdir()
    layout.results_zip(test_dir.parent, 2).mkdir()

    answers: list[Any] = []
    request = threading.Thread(
        target=lambda: answers.append(client.get(f"/api/models/{model['uuid']}/results")),
        daemon=True,
    )
    request.start()
    request.join(10)
    assert answers, "the results view blocked on a FIFO"
    problems = answers[0].get_json()["data"]["problems"]
    assert problems == [
        f"eval-{job_id}/test/summary.json is a folder where a file belongs.",
        f"eval-{job_id}/test/test.csv is a FIFO, not a regular file.",
        f"eval-{job_id}/test/results_epoch_2.zip is a folder where a file belongs.",
    ]
    assert client.get(f"/api/models/{model['uuid']}/results/download").status_code == 409


# --- completion: a worker must neither block nor crash on what a job left ------------------


def _ended_training(
    client: FlaskClient, db: sessionmaker[Session], exit_code: int = 0, log_tail: str | None = None
) -> tuple[dict[str, Any], int]:
    """A model whose training job ran and whose container ended: what complete_job judges."""
    model = create_model(client, params={"total_epoch": 2, "val_interval": 1})
    assert client.post(f"/api/train/run/{model['uuid']}").status_code == 200
    with db() as session:
        job_id = session.scalars(select(Job.id).where(Job.model_id == model["id"])).one()
    assert record_observation(db, None, job_id, JobObservation(JobEvent.STARTED)).accepted
    with transaction(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert claim(session, job, "test-node", (), 0)  # a node ends only what it claimed
        record_end(
            session,
            job,
            ended_at=datetime.now(UTC),
            exit_code=exit_code,
            missing=False,
            oom_killed=False,
            log_tail=log_tail,
        )
    return model, job_id


def _complete_within(db: sessionmaker[Session], settings: Settings, job_id: int) -> str:
    verdicts: list[Any] = []

    def run() -> None:
        try:
            verdicts.append(complete_job(db, settings, None, job_id))
        except BaseException as exc:
            verdicts.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(15)
    assert verdicts, "complete_job blocked"
    assert isinstance(verdicts[0], str), verdicts[0]
    return verdicts[0]


def _job_and_model(db: sessionmaker[Session], job_id: int) -> tuple[Job, Model]:
    with db() as session:
        job = session.get(Job, job_id)
        assert job is not None
        model = session.get(Model, job.model_id)
        assert model is not None
        session.expunge_all()
        return job, model


@pytest.mark.parametrize(
    ("plant", "why"),
    [
        (lambda path: os.mkfifo(path), "is a FIFO, not a regular file"),
        (lambda path: path.mkdir(), "is a folder where a file belongs"),
        (lambda path: path.symlink_to("/dev/zero"), "is a symbolic link (links are not followed)"),
    ],
    ids=["fifo", "folder", "link-to-dev-zero"],
)
def test_a_hostile_val_csv_fails_the_job_at_once(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings, plant: Any, why: str
) -> None:
    model, job_id = _ended_training(client, db)
    train = layout.train_dir(settings.output_root, model["uuid"])
    train.mkdir(parents=True)
    (train / "train.csv").write_text("epoch,loss\n1,0.5\n2,0.4\n")
    plant(train / "val.csv")

    _complete_within(db, settings, job_id)
    job, stored_model = _job_and_model(db, job_id)
    assert job.status_cd == "FAILED"
    assert stored_model.last_error == f"OUTPUT_INCOMPLETE: output-refused: train/val.csv {why}"


def test_a_train_folder_linked_elsewhere_fails_the_job(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    model, job_id = _ended_training(client, db)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "val.csv").write_text("epoch,val_loss\n1,0.5\n2,0.4\n")
    (elsewhere / "train.csv").write_text("epoch,loss\n1,0.5\n2,0.4\n")
    _model_dir(settings, model["uuid"]).mkdir(parents=True)
    layout.train_dir(settings.output_root, model["uuid"]).symlink_to(elsewhere)

    _complete_within(db, settings, job_id)
    job, stored_model = _job_and_model(db, job_id)
    assert job.status_cd == "FAILED"
    assert stored_model.last_error == (
        "OUTPUT_INCOMPLETE: output-refused: train is a symbolic link (links are not followed)"
    )


def test_nul_and_invalid_utf8_in_a_log_tail_are_stored_escaped(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    # What `printf 'a\0b\n'; exit 1` leaves, with a byte that is not UTF-8 (surrogateescape).
    model, job_id = _ended_training(client, db, exit_code=1, log_tail="a\0b\n\udcff end")
    _complete_within(db, settings, job_id)
    job, stored_model = _job_and_model(db, job_id)
    assert job.log_tail == "a\\x00b\n\\xff end"
    assert job.status_cd == "FAILED" and job.error_message == "a\\x00b\n\\xff end"
    assert stored_model.last_error == "CONTAINER_EXIT_1"
    logs = client.get(f"/api/models/{model['uuid']}/logs").get_json()["data"]
    assert logs["logTail"] == "a\\x00b\n\\xff end"


def test_nul_in_a_csv_header_is_stored_escaped(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    model, job_id = _ended_training(client, db)
    train = layout.train_dir(settings.output_root, model["uuid"])
    train.mkdir(parents=True)
    (train / "train.csv").write_bytes(b"epoch,lo\0ss\n1,0.5\n2,0.4\n")
    (train / "val.csv").write_bytes(b"epoch,val_loss\n1,0.5\n2,0.4\n")

    verdict = _complete_within(db, settings, job_id)
    job, _ = _job_and_model(db, job_id)
    assert job.status_cd == "SUCCESS", verdict
    with db() as session:
        names = session.scalars(
            select(MetricSeries.metric_names).where(MetricSeries.split == "train")
        ).one()
    assert names == ["lo\\x00ss"]


def test_a_regular_results_zip_is_served_from_the_gate_s_descriptor(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    model = create_model(client)
    job_id = _successful_eval(db, model["id"])
    zip_path = layout.results_zip(layout.eval_dir(settings.output_root, model["uuid"], job_id), 2)
    zip_path.parent.mkdir(parents=True)
    zip_path.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    download = client.get(f"/api/models/{model['uuid']}/results/download")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert download.headers["Content-Length"] == "22"
    assert download.data == b"PK\x05\x06" + b"\0" * 18
    download.close()
