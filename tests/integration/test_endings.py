"""How a job's end is written (issue 12, defects 3, 7, 8): times are the container's own, every
ending keeps the metrics its run wrote, and a job judged by its outputs alone records its
progress. Real PostgreSQL and Redis; the node's part (record_end) and the outputs are played
by the test, and the judgement (complete_job) is run later, as a busy metrics queue would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job, Model, TrainMetric, ValidationMetric
from app.db.session import transaction
from app.domain import layout
from app.domain.transitions import JobEvent, JobObservation
from app.services.observations import record_observation
from tests.integration.helpers import create_model
from workers.completion import complete_job
from workers.container_writes import claim, record_end

TRAIN_CSV = "epoch,loss\n1,0.9\n2,0.8\n3,0.7\n"
VAL_CSV = "epoch,val_loss\n1,0.95\n2,0.85\n"


def _run(client: FlaskClient, db: sessionmaker[Session], **params: Any) -> tuple[str, int]:
    model = create_model(client, params={"total_epoch": 4, "val_interval": 1, **params})
    assert client.post(f"/api/train/run/{model['uuid']}").status_code == 200
    with db() as session:
        job_id = session.scalars(select(Job.id).where(Job.model_id == model["id"])).one()
    return model["uuid"], job_id


def _end(
    db: sessionmaker[Session],
    job_id: int,
    *,
    started_at: datetime | None,
    ended_at: datetime,
    exit_code: int | None = 0,
    node_lost: bool = False,
) -> None:
    """What the owning node (or the sweep, for a lost node) records when the container ends."""
    with transaction(db) as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert claim(session, job, "test-node", (), 0)  # a node ends only what it claimed
        record_end(
            session,
            job,
            started_at=started_at,
            ended_at=ended_at,
            exit_code=exit_code,
            missing=node_lost,
            oom_killed=False,
            log_tail=None,
            node_lost=node_lost,
        )


def _write_outputs(settings: Settings, uid: str, train: str, val: str) -> Path:
    folder = layout.train_dir(settings.output_root, uid)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(train)
    (folder / "val.csv").write_text(val)
    return folder


def _rows(db: sessionmaker[Session], uid: str) -> tuple[int, int]:
    with db() as session:
        model_id = session.scalar(select(Model.id).where(Model.uuid == uid))
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(t).where(t.model_id == model_id))
            for t in (TrainMetric, ValidationMetric)
        )


def _epochs(client: FlaskClient, uid: str, split: str) -> list[int]:
    """The epochs the chart of one split shows (GET /api/models/<uuid>/metrics)."""
    answer = client.get(f"/api/models/{uid}/metrics?split={split}").get_json()["data"]
    return [point["epoch"] for point in answer["points"]]


def _stored(db: sessionmaker[Session], uid: str, job_id: int) -> tuple[Model, Job]:
    with db() as session:
        model = session.scalars(select(Model).where(Model.uuid == uid)).one()
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge_all()
        return model, job


def test_times_are_the_containers_not_the_judgements(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _run(client, db)
    assert record_observation(db, None, job_id, JobObservation(JobEvent.STARTED)).accepted
    started = datetime.now(UTC) - timedelta(seconds=30)
    ended = started + timedelta(seconds=6)  # a 6 s training, judged 24 s later
    _write_outputs(settings, uid, TRAIN_CSV, VAL_CSV)
    _end(db, job_id, started_at=started, ended_at=ended)

    complete_job(db, settings, None, job_id)
    model, job = _stored(db, uid, job_id)
    assert (model.step1_strt_dttm, model.step1_end_dttm) == (started, ended)
    assert (job.started_dttm, job.finished_dttm) == (started, ended)
    assert job.container_ended_dttm == ended
    assert client.get(f"/api/models/{uid}").get_json()["data"]["step1Duration"] == "6초"


def test_an_end_judged_before_the_start_was_observed_has_a_start(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    """A fast container: its end is judged while its job is still QUEUED (no STARTED yet)."""
    uid, job_id = _run(client, db)
    started = datetime.now(UTC) - timedelta(seconds=3)
    ended = started + timedelta(seconds=1)
    _write_outputs(settings, uid, TRAIN_CSV, VAL_CSV)
    _end(db, job_id, started_at=started, ended_at=ended)

    complete_job(db, settings, None, job_id)
    model, job = _stored(db, uid, job_id)
    assert (model.step1_strt_dttm, model.step1_end_dttm) == (started, ended)
    assert job.started_dttm == started
    shown = client.get(f"/api/models/{uid}").get_json()["data"]
    assert shown["step1StrtDttm"] and shown["step1Duration"] == "1초"


def test_a_failed_run_keeps_the_metrics_of_its_finished_epochs(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _run(client, db)
    assert record_observation(db, None, job_id, JobObservation(JobEvent.STARTED)).accepted
    _write_outputs(settings, uid, TRAIN_CSV, VAL_CSV)
    _end(db, job_id, started_at=None, ended_at=datetime.now(UTC), exit_code=3)

    complete_job(db, settings, None, job_id)
    model, job = _stored(db, uid, job_id)
    assert (job.status_cd, model.last_error) == ("FAILED", "CONTAINER_EXIT_3")
    assert _rows(db, uid) == (3, 2)
    assert _epochs(client, uid, "train") == [1, 2, 3]
    assert _epochs(client, uid, "val") == [1, 2]


def test_a_canceled_run_keeps_what_its_container_wrote_until_it_stopped(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _run(client, db)
    assert record_observation(db, None, job_id, JobObservation(JobEvent.STARTED)).accepted
    assert client.post(f"/api/train/cancel/{uid}").status_code == 200  # CANCELED at once
    # The node stops the container later; it finished epoch 3 meanwhile.
    _write_outputs(settings, uid, TRAIN_CSV, VAL_CSV)
    started = datetime.now(UTC) - timedelta(seconds=20)
    ended = datetime.now(UTC) + timedelta(seconds=2)  # after the cancel was applied
    _end(db, job_id, started_at=started, ended_at=ended, exit_code=143)

    for _ in range(2):  # a replay (redelivery) changes nothing: keyed, replacing
        complete_job(db, settings, None, job_id)
        assert _rows(db, uid) == (3, 2)
    model, job = _stored(db, uid, job_id)
    assert (job.status_cd, model.step1_state) == ("CANCELED", "STOPPED")
    assert (model.step1_strt_dttm, model.step1_end_dttm, job.finished_dttm) == (
        started,
        ended,
        ended,
    )


def test_a_canceled_run_leaves_a_later_attempts_metrics_alone(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _run(client, db)
    assert record_observation(db, None, job_id, JobObservation(JobEvent.STARTED)).accepted
    assert client.post(f"/api/train/cancel/{uid}").status_code == 200
    assert client.post(f"/api/train/restart/{uid}").status_code == 200  # a new attempt
    _write_outputs(settings, uid, TRAIN_CSV, VAL_CSV)
    _end(db, job_id, started_at=None, ended_at=datetime.now(UTC), exit_code=143)

    complete_job(db, settings, None, job_id)
    assert _rows(db, uid) == (0, 0)


def test_a_job_judged_after_its_node_was_lost_records_its_checkpoint(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    uid, job_id = _run(client, db, val_interval=2)
    assert record_observation(db, None, job_id, JobObservation(JobEvent.STARTED)).accepted
    folder = _write_outputs(
        settings, uid, TRAIN_CSV + "4,0.6\n", "epoch,val_loss\n2,0.85\n4,0.8\n"
    )
    (folder / "progress.json").write_text('{"epoch": 4, "checkpoint_epoch": 4}')
    _end(db, job_id, started_at=None, ended_at=datetime.now(UTC), exit_code=None, node_lost=True)

    complete_job(db, settings, None, job_id)
    shown = client.get(f"/api/models/{uid}").get_json()["data"]
    assert shown["statusCd"] == "COMPLETED"
    assert shown["checkpointEpochs"] == [2, 4]
    assert shown["progress"]["epochsDone"] == 4
    assert client.post(f"/api/train/test/run/4/{uid}").status_code == 200


def test_a_run_stopped_before_its_first_validation_keeps_its_train_rows(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings
) -> None:
    """val.csv still a bare header (val_interval 2, canceled after epoch 1): the train row
    stays; an all-or-nothing ingest lost it (found by tests/chaos, run_cancel_race)."""
    uid, job_id = _run(client, db, val_interval=2)
    assert record_observation(db, None, job_id, JobObservation(JobEvent.STARTED)).accepted
    assert client.post(f"/api/train/cancel/{uid}").status_code == 200
    _write_outputs(settings, uid, "epoch,loss\n1,0.9\n", "epoch,val_loss\n")
    now = datetime.now(UTC)
    _end(db, job_id, started_at=now - timedelta(seconds=5), ended_at=now, exit_code=143)

    complete_job(db, settings, None, job_id)
    assert _rows(db, uid) == (1, 0)
    assert _epochs(client, uid, "train") == [1]
