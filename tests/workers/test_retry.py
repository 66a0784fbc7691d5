"""Automatic retry on the real stack (issue 14, "Must hold"): worker processes, Docker
containers, PostgreSQL, Redis. Short on purpose: few epochs, short intervals."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import TrainMetric
from app.domain import layout
from app.services.queries import installation_id
from tests.integration.helpers import create_model
from tests.workers.conftest import (
    docker_client,
    model_of,
    wait_for_status,
    wait_running,
    wait_until,
)

# A node is lost after 3 s of silence; one presumed gone for good after 5 s.
FAST_LOSS = {"NODE_LOST_AFTER_S": "3", "NODE_GONE_AFTER_S": "5"}


@contextmanager
def live_containers_watched(db: sessionmaker[Session]) -> Iterator[list[int]]:
    """Samples how many of this installation's containers run at once, every 0.2 s."""
    with db() as session:
        installation = installation_id(session)
    ours = {"label": [f"trainyard.installation={installation}"], "status": "running"}
    counts: list[int] = []
    done = threading.Event()

    def sample() -> None:
        engine = docker_client()
        assert engine is not None
        while not done.wait(0.2):
            counts.append(len(engine.containers.list(filters=ours)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield counts
    finally:
        done.set()
        sampler.join(10)


def _names(engine: docker.DockerClient) -> list[str]:
    """The engine's container names, from one listing (sparse: no inspect per container,
    which fails on one another test removes between the listing and the inspect)."""
    return [
        name.lstrip("/")
        for container in engine.containers.list(all=True, sparse=True)
        for name in container.attrs.get("Names", [])
    ]


def _launched(worker_log: str, job_id: int) -> bool:
    started = rf"\bjob {job_id} started in trainyard-\w+-job-{job_id}\b"
    return re.search(started, worker_log) is not None


def test_a_job_whose_node_dies_for_good_resumes_on_the_other_node(
    client: FlaskClient,
    workers,
    trainer_image: str,
    settings: Settings,
    db: sessionmaker[Session],
) -> None:
    node_a = workers("node-a", **FAST_LOSS)
    params = {"total_epoch": 8, "val_interval": 2, "epoch_seconds": 0.5}
    uid = create_model(client, params=params, retry={"max": 2, "on": ["NODE_LOST"]})["uuid"]
    with live_containers_watched(db) as live:
        first = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
        wait_running(client, uid, checkpoint=2)
        # node-a dies for good: its worker and, with its machine, its container.
        node_a.kill()
        docker_client().containers.get(first["containerName"]).kill()
        workers("node-b", **FAST_LOSS)

        done = wait_for_status(client, uid, "statusCd", "COMPLETED", 90)
    lost, retried = done["jobs"]
    assert (lost["statusCd"], lost["endCause"], lost["node"]) == ("STOPPED", "NODE_LOST", "node-a")
    assert lost["retryNote"].startswith("retried as attempt 2 (from epoch ")
    assert (retried["statusCd"], retried["retryNumber"], retried["node"]) == (
        "SUCCESS", 1, "node-b"
    )  # fmt: skip
    assert retried["params"]["resume_from"] >= 2, "resumed from the latest checkpoint"
    assert done["retryStatus"] is None and done["lastError"] is None
    assert live and max(live) == 1, "never two live containers"
    train_csv = layout.train_dir(settings.output_root, uid) / "train.csv"
    epochs = [int(line.split(",")[0]) for line in train_csv.read_text().splitlines()[1:]]
    assert epochs == list(range(1, 9)), "no epoch twice"
    with db() as session:
        stored = session.scalars(
            select(TrainMetric.epoch).where(TrainMetric.model_id == done["id"])
        ).all()
    assert sorted(stored) == list(range(1, 9))


def test_a_trainer_that_always_fails_stops_at_max_or_earlier_at_the_thrash_guard(
    client: FlaskClient, workers, trainer_image: str
) -> None:
    workers("node-a", JOB_RETRY_THRASH_FAILURES="3", JOB_RETRY_THRASH_WINDOW_S="600")
    failing = {"total_epoch": 2, "val_interval": 1, "fail_at_epoch": 1}
    by_budget = create_model(client, params=failing, retry={"max": 1, "on": ["EXIT:3"]})["uuid"]
    by_guard = create_model(client, params=failing, retry={"max": 5, "on": ["EXIT:3"]})["uuid"]
    client.post(f"/api/train/run/{by_budget}")
    client.post(f"/api/train/run/{by_guard}")

    spent = wait_for_status(client, by_budget, "statusCd", "ERROR", 90)
    assert (spent["lastError"], spent["retryStatus"]) == ("CONTAINER_EXIT_3", None)
    assert [(j["statusCd"], j["endCause"]) for j in spent["jobs"]] == [("FAILED", "EXIT:3")] * 2
    assert spent["jobs"][-1]["retryNote"] == "not retried: retry budget spent (1/1)"

    guarded = wait_for_status(client, by_guard, "statusCd", "ERROR", 90)
    assert guarded["lastError"] == "CONTAINER_EXIT_3"
    assert [j["retryNumber"] for j in guarded["jobs"]] == [None, 1, 2], "3 failures, not 6"
    assert "thrash guard, 3 failures within 600 s" in guarded["jobs"][-1]["retryNote"]


def test_a_cancel_during_a_pending_retry_wins(
    client: FlaskClient, workers, trainer_image: str
) -> None:
    """The retry waits for the lost node's container (no NODE_GONE_AFTER_S: the node may come
    back); the user cancels meanwhile; the retry never launches, not even when it could."""
    lost_after = {"NODE_LOST_AFTER_S": "3"}
    node_a = workers("node-a", **lost_after)
    params = {"total_epoch": 20, "val_interval": 2, "epoch_seconds": 0.5}
    uid = create_model(client, params=params, retry={"max": 2, "on": ["NODE_LOST"]})["uuid"]
    first = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid, checkpoint=2)
    node_a.kill()  # silent; its container trains on
    node_b = workers("node-b", **lost_after)

    pending = wait_for_status(client, uid, "retryStatus", "retrying (1/2) after NODE_LOST", 60)
    assert pending["statusCd"] == "IN_PROGRESS"
    retry_id = pending["jobs"][-1]["id"]
    assert pending["jobs"][-1]["statusCd"] == "QUEUED"
    assert client.post(f"/api/train/cancel/{uid}").status_code == 200

    back = workers("node-a", **lost_after)  # stops its orphan: the retry could start now
    canceled = wait_for_status(client, uid, "statusCd", "STOPPED", 30)
    assert (canceled["lastError"], canceled["retryStatus"]) == ("CANCELED_BY_USER", None)
    assert [j["statusCd"] for j in canceled["jobs"]] == ["STOPPED", "CANCELED"]
    engine = docker_client()
    wait_until(lambda: first["containerName"] not in _names(engine), 30, "the orphan removed")
    time.sleep(2)  # time enough for a launch that should not happen
    # the retry's own container name (stored with the job): a bare "-job-<id>" suffix also
    # matched other installations' containers on the shared engine
    retry_name = canceled["jobs"][-1]["containerName"]
    assert retry_name and retry_name.endswith(f"-job-{retry_id}")
    assert retry_name not in _names(engine)
    assert not _launched(node_b.log() + back.log(), retry_id)
    assert model_of(client, uid)["jobs"][-1]["statusCd"] == "CANCELED"
