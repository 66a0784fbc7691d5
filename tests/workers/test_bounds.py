"""Nothing retries forever, nothing stays claimed forever (issue 10 item 4, issue 12 defect 1),
with the faults injected for real: the worker's Docker API goes silent (a socket proxy
SIGKILLed by PID), the metric tables are locked by another session for as long as the test
runs. Short intervals, few attempts: every test ends in seconds."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import GpuLease, Job
from tests.integration.helpers import create_model
from tests.workers.conftest import model_of, wait_for_status, wait_until
from tests.workers.docker_proxy import DockerProxy
from tests.workers.test_recovery import _launches

FAST_RETRIES = {
    "RETRY_BACKOFF_S": "1",
    "RETRY_BACKOFF_MAX_S": "2",
    "CLAIM_LOST_AFTER_S": "1",
    "DB_LOCK_TIMEOUT_S": "1",
}


@pytest.fixture
def docker_proxy() -> Iterator[DockerProxy]:
    # A short folder: a Unix socket path has at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="ty-proxy-") as folder:
        proxy = DockerProxy(Path(folder) / "docker.sock").start()
        yield proxy
        proxy.kill()


def _job(db: sessionmaker[Session], job_id: int) -> Job:
    with db() as session:
        return session.get(Job, job_id)


def test_a_launch_whose_docker_api_is_unreachable_is_launched_once_it_answers(
    client: FlaskClient, workers, trainer_image: str, docker_proxy: DockerProxy, db
) -> None:
    worker = workers("node-a", DOCKER_HOST=f"unix://{docker_proxy.path}", **FAST_RETRIES)
    docker_proxy.kill()  # the engine stops answering this node
    uid = create_model(client, params={"total_epoch": 2})["uuid"]
    job_id = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]
    wait_until(lambda: _job(db, job_id).node == "node-a", 30, "node-a to claim the job")
    time.sleep(2)  # its launch meets the silent engine; the claim stays (a container may exist)
    assert _job(db, job_id).status_cd == "QUEUED"

    docker_proxy.start()  # the engine answers again: the lost claim is released, relaunched
    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 60)
    assert [j["statusCd"] for j in done["jobs"]] == ["SUCCESS"]
    assert _launches(worker.log(), job_id) == 1, "one container, started once"
    assert "failed after its claim: ConnectionError" in worker.log()
    # The first claim, maybe one counted while the engine was silent, the one that launched.
    assert 2 <= _job(db, job_id).launch_attempts <= 3


def test_a_gpu_launch_whose_docker_api_stays_unreachable_ends_after_its_attempts(
    client: FlaskClient, workers, trainer_image: str, docker_proxy: DockerProxy, db
) -> None:
    workers(
        "node-a",
        DOCKER_HOST=f"unix://{docker_proxy.path}",
        NODE_GPUS="0",
        RETRY_MAX_ATTEMPTS="2",
        **FAST_RETRIES,
    )
    docker_proxy.kill()
    uid = create_model(client, params={"total_epoch": 2}, resources={"gpus": 1})["uuid"]
    job_id = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]

    failed = wait_for_status(client, uid, "statusCd", "ERROR", 30)
    assert failed["lastError"].startswith("LAUNCH_FAILED: ConnectionError"), failed["lastError"]
    assert failed["jobs"][0]["statusCd"] == "FAILED"
    with db() as session:  # a container may exist where nobody can look: the lease stays
        assert session.scalars(select(GpuLease.job_id)).all() == [job_id]

    docker_proxy.start()  # once the engine answers, the node confirms nothing runs: released
    wait_until(lambda: _job(db, job_id).container_gone_dttm, 30, "the container confirmed gone")
    with db() as session:
        assert session.scalars(select(GpuLease)).all() == []
    assert _job(db, job_id).launch_attempts == 2
    assert model_of(client, uid)["statusCd"] == "ERROR"


def test_a_completion_that_always_fails_ends_the_job_after_its_attempts(
    client: FlaskClient, workers, db, tmp_path: Path, pg_engine
) -> None:
    """The metric tables stay locked (SHARE: reads go on, writes wait) by another session for
    the whole test, as by an operator's long CREATE INDEX: every ingest times out."""
    workers(
        "node-a",
        WORKER_RUNTIME="process",
        PROCESS_STATE_DIR=str(tmp_path / "processes"),
        NODE_GPUS="0",
        RETRY_MAX_ATTEMPTS="3",
        **FAST_RETRIES,
    )
    holder = pg_engine.connect()
    holder.execute(
        text(
            "LOCK TABLE tb_model_metrics_train, tb_model_metrics_validation,"
            " tb_model_metric_series IN SHARE MODE"
        )
    )
    try:
        uid = create_model(client, params={"total_epoch": 2}, resources={"gpus": 1})["uuid"]
        job_id = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]
        started = time.monotonic()
        failed = wait_for_status(client, uid, "statusCd", "ERROR", 60)
        assert time.monotonic() - started < 45
        assert failed["lastError"].startswith("COMPLETION_FAILED: LockNotAvailable"), failed[
            "lastError"
        ]
        assert (failed["jobs"][0]["statusCd"], failed["step1Status"]) == ("FAILED", "ERROR")
        job = _job(db, job_id)
        assert job.completion_attempts == 3
        assert job.container_gone_dttm is not None, "its container was removed"
        with db() as session:
            assert session.scalars(select(GpuLease)).all() == [], "its GPU lease was released"
        time.sleep(4)  # several sweeps: an ended job is not re-published
        assert _job(db, job_id).completion_attempts == 3
    finally:
        holder.rollback()
        holder.close()
