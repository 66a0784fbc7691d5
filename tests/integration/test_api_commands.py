"""The commands of SPEC §4 over HTTP, on real PostgreSQL and Redis: happy paths, 400/404/409,
the messages they publish, idempotency."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, Model, Node
from app.domain.transitions import JobEvent, JobObservation
from app.services.observations import record_observation, record_progress
from tests.integration.helpers import create_model, queued_tasks


def _job_ids(db: sessionmaker[Session]) -> list[int]:
    with db() as session:
        return list(session.scalars(select(Job.id).order_by(Job.id)))


def _finish_training(db: sessionmaker[Session], job_id: int, event: JobEvent, ckpt: int | None):
    """Stand in for a worker: started, progress, then the end — through the real services."""
    record_observation(db, None, job_id, JobObservation(JobEvent.STARTED))
    if ckpt is not None:
        record_progress(db, job_id, epochs_done=ckpt, checkpoint_epoch=ckpt)
    code = {JobEvent.SUCCEEDED: 0, JobEvent.FAILED: 3, JobEvent.LOST: None}[event]
    error = {
        JobEvent.SUCCEEDED: None,
        JobEvent.FAILED: "CONTAINER_EXIT_3",
        JobEvent.LOST: "SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE",
    }[event]
    write = record_observation(db, None, job_id, JobObservation(event, code, error))
    assert write.accepted


def test_run_queues_a_train_job_and_publishes_one_launch(
    client: FlaskClient, broker: redis.Redis, db: sessionmaker[Session]
) -> None:
    model = create_model(client)
    response = client.post(f"/api/train/run/{model['uuid']}")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert (data["statusCd"], data["step1Status"], data["step2Status"]) == (
        "IN_PROGRESS",
        "IN_PROGRESS",
        "READY",
    )
    assert data["job"]["statusCd"] == "QUEUED" and data["job"]["jobType"] == "TRAIN"
    assert data["currentAttemptId"] == data["job"]["id"]
    assert data["step1StrtDttm"] is None  # set when the container actually starts

    tasks = queued_tasks(broker, "launch.cpu")
    assert tasks == [
        {
            "task": "trainyard.launch_job",
            "id": f"outbox-{tasks[0]['id'][7:]}",
            "args": [],
            "kwargs": {"job_id": data["job"]["id"]},
        }
    ]
    assert queued_tasks(broker, "launch.gpu") == []


def test_gpu_model_launches_on_the_gpu_queue(client: FlaskClient, broker: redis.Redis) -> None:
    model = create_model(client, resources={"gpus": 1})
    client.post(f"/api/train/run/{model['uuid']}")
    assert [t["task"] for t in queued_tasks(broker, "launch.gpu")] == ["trainyard.launch_job"]
    assert queued_tasks(broker, "launch.cpu") == []


def test_run_twice_is_a_409_that_names_the_state(client: FlaskClient, broker: redis.Redis) -> None:
    model = create_model(client)
    assert client.post(f"/api/train/run/{model['uuid']}").status_code == 200
    second = client.post(f"/api/train/run/{model['uuid']}")
    assert second.status_code == 409
    assert second.get_json()["error"] == {
        "code": "STATE_CONFLICT",
        "message": "Can't run when the model is IN_PROGRESS; run needs the model READY.",
    }
    assert len(queued_tasks(broker, "launch.cpu")) == 1


@pytest.mark.parametrize(
    "path",
    [
        "run/{u}",
        "restart/{u}",
        "resume/{u}",
        "cancel/{u}",
        "test/run/2/{u}",
        "test/cancel/{u}",
        "status/{u}",
        "create-tmp/{u}",
    ],
)
def test_every_command_answers_404_and_400(client: FlaskClient, path: str) -> None:
    unknown = client.post("/api/train/" + path.format(u=uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "MODEL_NOT_FOUND"
    malformed = client.post("/api/train/" + path.format(u="1234"))
    assert malformed.status_code == 400
    assert malformed.get_json()["error"]["code"] == "INVALID_UUID"


def test_counts_answers_404_and_400(client: FlaskClient) -> None:
    assert client.get(f"/api/train/counts/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/train/counts/zzz").status_code == 400


def test_cancel_a_queued_job(client: FlaskClient, broker: redis.Redis, db) -> None:
    model = create_model(client)
    client.post(f"/api/train/run/{model['uuid']}")
    response = client.post(f"/api/train/cancel/{model['uuid']}")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert (data["statusCd"], data["step1Status"], data["lastError"]) == (
        "STOPPED",
        "STOPPED",
        "CANCELED_BY_USER",
    )
    assert (data["job"]["statusCd"], data["job"]["exitCode"]) == ("CANCELED", -1)
    # Never claimed by a node: nothing to stop; the launch will find it CANCELED.
    assert broker.keys("node.*") == []
    assert client.post(f"/api/train/cancel/{model['uuid']}").status_code == 409


def test_cancel_a_running_job_routes_stop_to_its_node(
    client: FlaskClient, broker: redis.Redis, db: sessionmaker[Session]
) -> None:
    model = create_model(client)
    job_id = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]["id"]
    with db.begin() as session:  # what a node's claim writes (no state change)
        session.get(Job, job_id).node = "gpu-a"
    record_observation(db, None, job_id, JobObservation(JobEvent.STARTED))
    started = client.get(f"/api/models/{model['uuid']}").get_json()["data"]
    assert started["step1StrtDttm"] is not None and started["jobs"][0]["statusCd"] == "RUNNING"

    assert client.post(f"/api/train/cancel/{model['uuid']}").status_code == 200
    assert queued_tasks(broker, "node.gpu-a") == [
        {
            "task": "trainyard.stop_job",
            "id": queued_tasks(broker, "node.gpu-a")[0]["id"],
            "args": [],
            "kwargs": {"job_id": job_id},
        }
    ]
    # The worker's late report of the end changes nothing: the cancel already ended the job.
    late = record_observation(db, None, job_id, JobObservation(JobEvent.SUCCEEDED))
    assert not late.accepted
    after = client.get(f"/api/models/{model['uuid']}").get_json()["data"]
    assert after["jobs"][0]["statusCd"] == "CANCELED" and after["statusCd"] == "STOPPED"


def test_resume_needs_a_checkpoint(client: FlaskClient, db: sessionmaker[Session]) -> None:
    model = create_model(client)
    job_id = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]["id"]
    _finish_training(db, job_id, JobEvent.LOST, ckpt=None)
    refused = client.post(f"/api/train/resume/{model['uuid']}")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "NO_CHECKPOINT"
    assert "restart" in refused.get_json()["error"]["message"]


def test_resume_continues_from_the_latest_checkpoint(
    client: FlaskClient, broker: redis.Redis, db: sessionmaker[Session]
) -> None:
    model = create_model(client)
    first = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]["id"]
    _finish_training(db, first, JobEvent.LOST, ckpt=2)
    stopped = client.get(f"/api/models/{model['uuid']}").get_json()["data"]
    assert stopped["statusCd"] == "STOPPED" and stopped["progress"]["checkpointEpoch"] == 2

    response = client.post(f"/api/train/resume/{model['uuid']}")
    assert response.status_code == 200
    job = response.get_json()["data"]["job"]
    assert job["params"]["resume_from"] == 2 and job["attempt"] == 2
    assert response.get_json()["data"]["lastError"] is None
    assert len(queued_tasks(broker, "launch.cpu")) == 2


def test_restart_after_error_starts_fresh(client: FlaskClient, db: sessionmaker[Session]) -> None:
    model = create_model(client)
    first = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]["id"]
    _finish_training(db, first, JobEvent.FAILED, ckpt=2)
    failed = client.get(f"/api/models/{model['uuid']}").get_json()["data"]
    assert (failed["statusCd"], failed["lastError"]) == ("ERROR", "CONTAINER_EXIT_3")
    assert failed["jobs"][0]["exitCode"] == 3
    assert (
        client.post(f"/api/train/resume/{model['uuid']}").status_code == 409
    )  # ERROR: restart only

    response = client.post(f"/api/train/restart/{model['uuid']}")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["job"]["params"]["fresh_outputs"] is True
    assert "resume_from" not in data["job"]["params"]
    assert (data["bestEpoch"], data["progress"]["checkpointEpoch"], data["step2Status"]) == (
        None,
        None,
        "READY",
    )


def test_test_run_and_test_cancel(
    client: FlaskClient, broker: redis.Redis, db: sessionmaker[Session]
) -> None:
    model = create_model(client)
    uid = model["uuid"]
    assert client.post(f"/api/train/test/run/4/{uid}").status_code == 409  # not trained yet
    first = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]
    _finish_training(db, first, JobEvent.SUCCEEDED, ckpt=4)
    done = client.get(f"/api/models/{uid}").get_json()["data"]
    assert (done["statusCd"], done["step1Status"], done["checkpointEpochs"]) == (
        "COMPLETED",
        "COMPLETED",
        [2, 4],
    )

    assert client.post(f"/api/train/test/run/0/{uid}").status_code == 400
    assert client.post(f"/api/train/test/run/abc/{uid}").status_code == 400
    beyond = client.post(f"/api/train/test/run/9/{uid}")
    assert beyond.status_code == 400 and "total_epoch" in beyond.get_json()["error"]["message"]
    no_ckpt = client.post(f"/api/train/test/run/3/{uid}")
    assert no_ckpt.status_code == 409 and no_ckpt.get_json()["error"]["code"] == "NO_CHECKPOINT"

    started = client.post(f"/api/train/test/run/2/{uid}")
    assert started.status_code == 200
    data = started.get_json()["data"]
    assert (data["statusCd"], data["step2Status"], data["job"]["jobType"]) == (
        "IN_PROGRESS",
        "IN_PROGRESS",
        "EVAL",
    )
    assert data["job"]["params"]["epoch"] == 2
    assert client.post(f"/api/train/test/run/4/{uid}").status_code == 409  # already testing
    assert client.post(f"/api/train/cancel/{uid}").status_code == 409  # step1 is COMPLETED

    canceled = client.post(f"/api/train/test/cancel/{uid}").get_json()["data"]
    assert (canceled["statusCd"], canceled["step2Status"], canceled["job"]["statusCd"]) == (
        "COMPLETED",
        "STOPPED",
        "CANCELED",
    )
    assert client.post(f"/api/train/test/cancel/{uid}").status_code == 409
    assert client.post(f"/api/train/test/run/4/{uid}").status_code == 200  # test again


def test_idempotency_key_returns_the_first_answer(
    client: FlaskClient, broker: redis.Redis, db: sessionmaker[Session]
) -> None:
    model = create_model(client)
    headers = {"Idempotency-Key": "click-1"}
    first = client.post(f"/api/train/run/{model['uuid']}", headers=headers)
    again = client.post(f"/api/train/run/{model['uuid']}", headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert len(_job_ids(db)) == 1 and len(queued_tasks(broker, "launch.cpu")) == 1
    # Without the key the repeat is a real second command, and the state forbids it.
    assert client.post(f"/api/train/run/{model['uuid']}").status_code == 409
    # The same key on another command is a client bug: say so.
    reused = client.post(f"/api/train/cancel/{model['uuid']}", headers=headers)
    assert reused.status_code == 400
    assert reused.get_json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    with db() as session:
        assert session.scalars(select(Model.status_cd)).one() == "IN_PROGRESS"


def test_status_sync_returns_the_model_and_says_what_it_did(
    client: FlaskClient, broker: redis.Redis, db: sessionmaker[Session]
) -> None:
    model = create_model(client)
    idle = client.post(f"/api/train/status/{model['uuid']}").get_json()["data"]
    assert idle["statusCd"] == "READY" and idle["sync"]["requested"] is False
    job_id = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]["id"]
    with db.begin() as session:
        session.get(Job, job_id).node = "node-1"

    # A node that never sent a heartbeat is not waited for.
    unknown = client.post(f"/api/train/status/{model['uuid']}").get_json()["data"]["sync"]
    assert unknown["requested"] is False
    assert unknown["reason"] == "node node-1 has never sent a heartbeat; not waiting for it"
    assert queued_tasks(broker, "node.node-1") == []

    # A node that beats but does not answer (no worker serves node-1 here): say so, don't hang.
    now = datetime.now(UTC)
    with db.begin() as session:
        session.add(Node(name="node-1", started_dttm=now, last_seen_dttm=now))
    started = time.monotonic()
    synced = client.post(f"/api/train/status/{model['uuid']}").get_json()["data"]
    assert time.monotonic() - started < 10, "a silent node must not hang the request"
    assert synced["sync"] == {
        "requested": True,
        "node": "node-1",
        "jobId": job_id,
        "answered": False,
        "reason": "node node-1 did not answer within 3 s",
    }
    assert [t["task"] for t in queued_tasks(broker, "node.node-1")] == ["trainyard.sync_job"]

    # A node silent for longer than SILENT_AFTER_S is not asked either.
    with db.begin() as session:
        session.get(Node, "node-1").last_seen_dttm = now - timedelta(minutes=5)
    stale = client.post(f"/api/train/status/{model['uuid']}").get_json()["data"]["sync"]
    assert stale["requested"] is False and "has sent no heartbeat since" in stale["reason"]
