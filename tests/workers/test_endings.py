"""How runs end, on the real stack (issue 12, defects 7 and 8): times are the container's own,
and a failed or cancelled run keeps the metrics of every epoch it finished, exactly once."""

from __future__ import annotations

import csv
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job, Model, TrainMetric, ValidationMetric
from app.domain import layout
from tests.integration.helpers import create_model
from tests.workers.conftest import (
    model_of,
    wait_for_status,
    wait_running,
    wait_until,
)


def _csv_epochs(path: Path) -> list[int]:
    with path.open() as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _chart_epochs(client: FlaskClient, uid: str, split: str) -> list[int]:
    answer = client.get(f"/api/models/{uid}/metrics?split={split}").get_json()["data"]
    return [point["epoch"] for point in answer["points"]]


def _row_counts(db: sessionmaker[Session], uid: str) -> tuple[int, int]:
    with db() as session:
        model_id = session.scalar(select(Model.id).where(Model.uuid == uid))
        train, val = (
            session.scalar(select(func.count()).select_from(t).where(t.model_id == model_id))
            for t in (TrainMetric, ValidationMetric)
        )
        return int(train or 0), int(val or 0)


def _container_gone(db: sessionmaker[Session], job_id: int) -> bool:
    with db() as session:
        return session.scalar(select(Job.container_gone_dttm).where(Job.id == job_id)) is not None


def _ended_by_its_container(db: sessionmaker[Session], job_id: int) -> bool:
    with db() as session:
        job = session.get(Job, job_id)
        return job is not None and job.finished_dttm == job.container_ended_dttm is not None


def test_fast_runs_have_the_containers_start_and_end(
    client: FlaskClient, workers, trainer_image: str, db: sessionmaker[Session]
) -> None:
    """4 epochs of 0.2 s: the end may be judged before the start is observed; both times are
    still there, and they are the container's (as Docker reported them), not the judgement's."""
    workers("node-a")
    params = {"total_epoch": 4, "val_interval": 2, "epoch_seconds": 0.2}
    uids = [create_model(client, params=params)["uuid"] for _ in range(4)]
    for uid in uids:
        assert client.post(f"/api/train/run/{uid}").status_code == 200
    for uid in uids:
        done = wait_for_status(client, uid, "statusCd", "COMPLETED", 90)
        assert done["step1StrtDttm"] and done["step1EndDttm"] and done["step1Duration"], done
        with db() as session:
            model = session.scalars(select(Model).where(Model.uuid == uid)).one()
            job = session.get(Job, model.current_attempt_id)
            assert job is not None and job.container_ended_dttm is not None
            assert model.step1_end_dttm == job.container_ended_dttm == job.finished_dttm
            assert model.step1_strt_dttm == job.started_dttm
            ran = (job.container_ended_dttm - job.started_dttm).total_seconds()
            assert 0.5 < ran < 15, f"the container ran {ran:.2f} s"


def test_a_run_failed_at_epoch_3_keeps_the_curves_of_epochs_1_and_2(
    client: FlaskClient, workers, trainer_image: str, settings: Settings, db
) -> None:
    workers("node-a")
    params = {"total_epoch": 6, "val_interval": 1, "fail_at_epoch": 3}
    uid = create_model(client, params=params)["uuid"]
    client.post(f"/api/train/run/{uid}")
    failed = wait_for_status(client, uid, "statusCd", "ERROR", 90)
    assert failed["lastError"] == "CONTAINER_EXIT_3"
    train = layout.train_dir(settings.output_root, uid)
    assert _csv_epochs(train / "train.csv") == [1, 2]
    assert _chart_epochs(client, uid, "train") == [1, 2]
    assert _chart_epochs(client, uid, "val") == _csv_epochs(train / "val.csv") == [1, 2]
    assert _row_counts(db, uid) == (2, 2)


def test_a_cancelled_run_keeps_every_finished_epoch(
    client: FlaskClient, workers, trainer_image: str, settings: Settings, db
) -> None:
    workers("node-a")  # STOP_GRACE_S=3
    params = {"total_epoch": 40, "val_interval": 1, "epoch_seconds": 0.4}
    uid = create_model(client, params=params)["uuid"]
    job = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid, checkpoint=2)
    assert client.post(f"/api/train/cancel/{uid}").status_code == 200
    wait_until(lambda: _container_gone(db, job["id"]), 15, "the cancelled container gone")
    train = layout.train_dir(settings.output_root, uid)
    expected = (len(_csv_epochs(train / "train.csv")), len(_csv_epochs(train / "val.csv")))
    assert expected[0] >= 2
    # The node recorded the container's end; the metrics queue then ingests what it wrote
    # and dates the job's end by the container's (the live curves may have been complete
    # already: wait for that judgement, not for the row count).
    wait_until(lambda: _ended_by_its_container(db, job["id"]), 15, "the end dated by Docker's")
    assert _row_counts(db, uid) == expected
    assert _chart_epochs(client, uid, "train") == _csv_epochs(train / "train.csv")
    stopped = model_of(client, uid)
    assert (stopped["statusCd"], stopped["jobs"][0]["statusCd"]) == ("STOPPED", "CANCELED")
    with db() as session:
        model = session.scalars(select(Model).where(Model.uuid == uid)).one()
        ended = session.get(Job, job["id"])
        assert ended is not None and model.step1_end_dttm == ended.container_ended_dttm
