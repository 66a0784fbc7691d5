"""Crashes, restarts and lost messages: every job still ends in the right state, once."""

from __future__ import annotations

import re
import time

import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import GpuLease, Job
from app.domain import layout
from app.services.publisher import CeleryPublisher
from tests.conftest import TEST_BROKER_URL
from tests.integration.helpers import create_model
from tests.workers.conftest import (
    docker_client,
    model_of,
    wait_for_status,
    wait_running,
)


def _launches(worker_log: str, job_id: int) -> int:
    """How many times a worker started a container for the job: the launcher logs
    "job N started in <container>" once per container it starts (a duplicate launch finds
    the container by name and logs nothing of the kind). The log file is shared by every
    process of one node in a test, killed ones included."""
    return len(re.findall(rf"\bjob {job_id} started in trainyard-\w+-job-{job_id}\b", worker_log))


def test_worker_killed_mid_run_reattaches_the_same_container(
    client: FlaskClient, workers, trainer_image: str
) -> None:
    worker = workers("node-a")
    model = create_model(client, params={"total_epoch": 8, "val_interval": 2, "epoch_seconds": 0.8})
    uid = model["uuid"]
    job = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid)
    container_id = docker_client().containers.get(job["containerName"]).id

    worker.kill()  # SIGKILL: no cleanup; the container is the Docker daemon's child and goes on
    assert docker_client().containers.get(job["containerName"]).status == "running"
    workers("node-a")
    assert docker_client().containers.get(job["containerName"]).id == container_id

    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 90)
    assert [j["statusCd"] for j in done["jobs"]] == ["SUCCESS"]
    assert done["progress"]["epochsDone"] == 8
    assert _launches(worker.log(), job["id"]) == 1, "the restart re-attached; it launched nothing"


def test_container_removed_while_worker_down_with_incomplete_outputs(
    client: FlaskClient, workers, trainer_image: str
) -> None:
    worker = workers("node-a")
    model = create_model(
        client, params={"total_epoch": 20, "val_interval": 2, "epoch_seconds": 0.5}
    )
    uid = model["uuid"]
    job = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid, checkpoint=2)
    worker.kill()
    docker_client().containers.get(job["containerName"]).remove(force=True)
    workers("node-a")
    stopped = wait_for_status(client, uid, "statusCd", "STOPPED", 60)
    assert stopped["lastError"] == (
        "SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE: val.csv-lines-mismatch"
    )
    assert (stopped["jobs"][0]["statusCd"], stopped["jobs"][0]["exitCode"]) == ("STOPPED", -1)
    # A checkpoint survived, so the user can resume (user document §7, scenario 4).
    assert stopped["progress"]["checkpointEpoch"] >= 2


def test_container_removed_while_worker_down_with_complete_outputs(
    client: FlaskClient, workers, trainer_image: str
) -> None:
    worker = workers("node-a")
    model = create_model(client, params={"total_epoch": 4, "val_interval": 2, "epoch_seconds": 0.5})
    uid = model["uuid"]
    job = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid)
    worker.kill()
    container = docker_client().containers.get(job["containerName"])
    assert container.wait(timeout=60)["StatusCode"] == 0  # it finished while nobody watched
    container.remove()
    workers("node-a")
    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 60)
    assert done["jobs"][0]["statusCd"] == "SUCCESS"


def test_lost_and_duplicated_launch_messages(
    client: FlaskClient, workers, trainer_image: str, broker: redis.Redis
) -> None:
    lost = create_model(client, params={"total_epoch": 2})
    lost_job = client.post(f"/api/train/run/{lost['uuid']}").get_json()["data"]["job"]
    doubled = create_model(client, params={"total_epoch": 2})
    doubled_job = client.post(f"/api/train/run/{doubled['uuid']}").get_json()["data"]["job"]

    broker.flushdb()  # Redis restarted empty: both launch messages are gone
    publisher = CeleryPublisher(TEST_BROKER_URL)
    for copy in ("a", "b"):  # …and one launch arrives twice
        publisher.publish(
            "trainyard.launch_job", "launch.cpu", {"job_id": doubled_job["id"]}, f"dup-{copy}"
        )
    worker = workers("node-a")
    wait_for_status(client, lost["uuid"], "statusCd", "COMPLETED", 90)
    wait_for_status(client, doubled["uuid"], "statusCd", "COMPLETED", 90)
    assert _launches(worker.log(), lost_job["id"]) == 1
    assert _launches(worker.log(), doubled_job["id"]) == 1
    for copy in ("a", "b"):  # both copies reached the worker; only one started a container
        assert f"trainyard.launch_job[dup-{copy}] received" in worker.log()


def test_two_gpu_nodes_share_work_without_sharing_a_gpu(
    client: FlaskClient, workers, settings: Settings, db: sessionmaker[Session], tmp_path
) -> None:
    """Two nodes on this machine (process runtime: GPUs are CUDA_VISIBLE_DEVICES ids)."""
    common = {"WORKER_RUNTIME": "process", "STOP_GRACE_S": "3"}
    workers("gpu-a", NODE_GPUS="0,1", PROCESS_STATE_DIR=str(tmp_path / "pa"), **common)
    workers("gpu-b", NODE_GPUS="2", PROCESS_STATE_DIR=str(tmp_path / "pb"), **common)
    params = {"total_epoch": 40, "val_interval": 2, "epoch_seconds": 0.5}
    models = [create_model(client, params=params, resources={"gpus": 1}) for _ in range(4)]
    for model in models[:3]:
        client.post(f"/api/train/run/{model['uuid']}")
    for model in models[:3]:
        wait_running(client, model["uuid"], timeout_s=60)

    with db() as session:
        held = {
            (lease.node, lease.gpu_id): lease.job_id for lease in session.scalars(select(GpuLease))
        }
        jobs = {job.id: job for job in session.scalars(select(Job))}
    assert sorted(held) == [("gpu-a", 0), ("gpu-a", 1), ("gpu-b", 2)], "each GPU once"
    assert {jobs[j].node for j in held.values()} == {"gpu-a", "gpu-b"}, "work spread over nodes"
    for (node, gpu), job_id in held.items():
        assert jobs[job_id].node == node and jobs[job_id].gpu_ids == [gpu]

    # A fourth GPU job waits: every GPU is taken.
    fourth = models[3]["uuid"]
    client.post(f"/api/train/run/{fourth}")
    time.sleep(3)
    assert model_of(client, fourth)["jobs"][0]["statusCd"] == "QUEUED"

    # Cancel the job on gpu-b: the stop reaches gpu-b, its GPU frees, the fourth job takes it.
    on_b = next(j for (node, _), j in held.items() if node == "gpu-b")
    b_model = next(m for m in models if model_of(client, m["uuid"])["currentAttemptId"] == on_b)
    client.post(f"/api/train/cancel/{b_model['uuid']}")
    fourth_running = wait_running(client, fourth, timeout_s=60)
    assert fourth_running["jobs"][0]["node"] == "gpu-b"
    assert fourth_running["jobs"][0]["gpuIds"] == [2]
    with db() as session:
        canceled = session.get(Job, on_b)
        assert canceled.container_gone_dttm is not None and canceled.container_exit_code is not None
    for model in models:
        client.post(f"/api/train/cancel/{model['uuid']}")


def test_a_silent_node_does_not_leave_its_job_running(
    client: FlaskClient, workers, trainer_image: str, settings: Settings
) -> None:
    worker = workers("node-a", NODE_LOST_AFTER_S="4")
    params = {"total_epoch": 30, "val_interval": 2, "epoch_seconds": 0.5}
    model = create_model(client, params=params)
    uid = model["uuid"]
    first = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid, checkpoint=2)
    worker.kill()  # node-a goes silent; its container trains on
    workers("node-b", NODE_LOST_AFTER_S="4")  # another node's sweep notices the silence

    stopped = wait_for_status(client, uid, "statusCd", "STOPPED", 60)
    assert stopped["lastError"] == "NODE_LOST_OUTPUT_INCOMPLETE: val.csv-lines-mismatch"
    assert stopped["jobs"][0]["statusCd"] == "STOPPED"

    # The old container may still run on node-a: a resume waits instead of starting a second.
    resumed = client.post(f"/api/train/resume/{uid}").get_json()["data"]["job"]
    time.sleep(4)
    assert model_of(client, uid)["jobs"][-1]["statusCd"] == "QUEUED"
    assert docker_client().containers.get(first["containerName"]).status == "running"

    workers("node-a", NODE_LOST_AFTER_S="4")  # back: stops its orphan; the resume starts
    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 120)
    assert done["jobs"][-1]["id"] == resumed["id"]
    train_csv = layout.train_dir(settings.output_root, uid) / "train.csv"
    epochs = [int(line.split(",")[0]) for line in train_csv.read_text().splitlines()[1:]]
    assert epochs == list(range(1, 31)), "no epoch twice"


def test_a_silent_nodes_job_that_finished_is_testable_at_once(
    client: FlaskClient, workers, trainer_image: str, settings: Settings
) -> None:
    """Issue 12 (3): the node went silent, its container finished; the sweep judges the job by
    its outputs (COMPLETED) and records its progress from them: a test run is accepted at
    once, not after the node returns."""
    worker = workers("node-a", NODE_LOST_AFTER_S="4")
    params = {"total_epoch": 6, "val_interval": 2, "epoch_seconds": 0.6}
    uid = create_model(client, params=params)["uuid"]
    first = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid, checkpoint=2)
    worker.kill()  # node-a goes silent before its container ends
    container = docker_client().containers.get(first["containerName"])
    deadline = time.monotonic() + 30
    while container.status != "exited" and time.monotonic() < deadline:
        time.sleep(0.3)
        container.reload()
    assert container.status == "exited", "the training finished while its node was silent"
    workers("node-b", NODE_LOST_AFTER_S="4")  # its sweep notices the silence

    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 60)
    assert done["checkpointEpochs"] == [2, 4, 6]
    assert done["progress"]["epochsDone"] == 6
    answer = client.post(f"/api/train/test/run/6/{uid}")
    assert answer.status_code in (200, 202), answer.get_json()
