"""A model's life cycle with real containers: run, cancel, resume, restart, test, failures."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import docker
from flask.testing import FlaskClient

from app.config import Settings
from app.domain import layout
from tests.integration.helpers import create_model
from tests.workers.conftest import (
    docker_client,
    model_of,
    wait_for_status,
    wait_running,
    wait_until,
)


def _epochs(path: Path) -> list[int]:
    with path.open() as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _container(name: str) -> docker.models.containers.Container | None:
    client = docker_client()
    assert client is not None
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def test_run_to_completed(
    client: FlaskClient, workers, trainer_image: str, settings: Settings
) -> None:
    workers("node-a")
    model = create_model(client, params={"total_epoch": 4, "val_interval": 2})
    job = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]
    done = wait_for_status(client, model["uuid"], "statusCd", "COMPLETED", 90)
    assert (done["step1Status"], done["step2Status"]) == ("COMPLETED", "READY")
    assert done["step1StrtDttm"] and done["step1EndDttm"] and done["step1Duration"]
    assert done["progress"]["epochsDone"] == 4 and done["progress"]["checkpointEpoch"] == 4
    attempt = done["jobs"][0]
    assert (attempt["statusCd"], attempt["exitCode"], attempt["node"]) == ("SUCCESS", 0, "node-a")
    train = layout.train_dir(settings.output_root, model["uuid"])
    assert _epochs(train / "train.csv") == [1, 2, 3, 4]
    assert _epochs(train / "val.csv") == [2, 4]
    # Recorded, then removed: no container is left behind.
    wait_until(lambda: _container(job["containerName"]) is None, 10, "container removal")


def test_cancel_resume_and_restart(
    client: FlaskClient, workers, trainer_image: str, settings: Settings
) -> None:
    workers("node-a")  # STOP_GRACE_S=3
    model = create_model(
        client, params={"total_epoch": 10, "val_interval": 2, "epoch_seconds": 0.7}
    )
    uid = model["uuid"]
    first = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    wait_running(client, uid, checkpoint=2)
    assert _container(first["containerName"]) is not None

    canceled_at = time.monotonic()
    answer = client.post(f"/api/train/cancel/{uid}").get_json()["data"]
    assert (answer["statusCd"], answer["lastError"]) == ("STOPPED", "CANCELED_BY_USER")
    wait_until(lambda: _container(first["containerName"]) is None, 3 + 2, "container gone")
    gone_after = time.monotonic() - canceled_at
    stopped = model_of(client, uid)
    assert (stopped["jobs"][0]["statusCd"], stopped["jobs"][0]["exitCode"]) == ("CANCELED", -1)
    checkpoint = wait_until(
        lambda: model_of(client, uid)["progress"]["checkpointEpoch"], 10, "checkpoint"
    )
    print(f"cancel → container gone in {gone_after:.2f} s; resume from epoch {checkpoint}")

    resumed = client.post(f"/api/train/resume/{uid}").get_json()["data"]["job"]
    assert resumed["params"]["resume_from"] == checkpoint
    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 90)
    assert done["jobs"][1]["statusCd"] == "SUCCESS"
    train = layout.train_dir(settings.output_root, uid)
    assert _epochs(train / "train.csv") == list(range(1, 11)), "no epoch twice after resume"
    assert _epochs(train / "val.csv") == [2, 4, 6, 8, 10]

    # Restart needs STOPPED or ERROR: cancel a fresh test-free run first.
    assert client.post(f"/api/train/restart/{uid}").status_code == 409
    return_to_stopped = create_model(client, params={"total_epoch": 6, "epoch_seconds": 0.5})
    uid2 = return_to_stopped["uuid"]
    client.post(f"/api/train/run/{uid2}")
    wait_running(client, uid2, checkpoint=2)
    client.post(f"/api/train/cancel/{uid2}")
    # the cancel answers before the container has stopped: read what it wrote once it ended
    wait_until(
        lambda: model_of(client, uid2)["jobs"][0]["containerExitCode"] is not None,
        30,
        "the cancelled container to end",
    )
    old_rows = _epochs(layout.train_dir(settings.output_root, uid2) / "train.csv")
    assert old_rows and max(old_rows) < 6
    restarted = client.post(f"/api/train/restart/{uid2}").get_json()["data"]["job"]
    done2 = wait_for_status(client, uid2, "statusCd", "COMPLETED", 90)
    assert done2["jobs"][-1]["id"] == restarted["id"]
    aside = layout.set_aside_dir(settings.output_root, uid2, restarted["id"])
    assert _epochs(aside / "train.csv") == old_rows, "the earlier run is kept aside"
    assert _epochs(layout.train_dir(settings.output_root, uid2) / "train.csv") == [1, 2, 3, 4, 5, 6]


def test_test_run_and_test_cancel(
    client: FlaskClient, workers, trainer_image: str, settings: Settings
) -> None:
    workers("node-a")
    model = create_model(client, params={"total_epoch": 4, "val_interval": 2})
    uid = model["uuid"]
    client.post(f"/api/train/run/{uid}")
    trained = wait_for_status(client, uid, "statusCd", "COMPLETED", 90)
    best = trained["bestEpoch"] or 4
    job = client.post(f"/api/train/test/run/{best}/{uid}").get_json()["data"]["job"]
    tested = wait_for_status(client, uid, "step2Status", "COMPLETED", 90)
    assert tested["statusCd"] == "COMPLETED" and tested["step2Duration"] is not None
    zip_path = layout.results_zip(layout.eval_dir(settings.output_root, uid, job["id"]), best)
    assert zip_path.is_file()

    slow = {"eval_seconds": 30}
    params = {**model["params"], **slow}
    slow_model = create_model(client, params=params)
    uid2 = slow_model["uuid"]
    client.post(f"/api/train/run/{uid2}")
    wait_for_status(client, uid2, "statusCd", "COMPLETED", 90)
    eval_job = client.post(f"/api/train/test/run/4/{uid2}").get_json()["data"]["job"]
    wait_until(
        lambda: model_of(client, uid2)["jobs"][-1]["statusCd"] == "RUNNING", 30, "EVAL running"
    )
    canceled = client.post(f"/api/train/test/cancel/{uid2}").get_json()["data"]
    assert (canceled["statusCd"], canceled["step2Status"]) == ("COMPLETED", "STOPPED")
    wait_until(lambda: _container(eval_job["containerName"]) is None, 5, "EVAL container gone")


def test_trainer_failure_and_oom(
    client: FlaskClient, workers, trainer_image: str, settings: Settings
) -> None:
    workers("node-a")
    failing = create_model(client, params={"total_epoch": 4, "fail_at_epoch": 2})
    client.post(f"/api/train/run/{failing['uuid']}")
    error = wait_for_status(client, failing["uuid"], "statusCd", "ERROR", 90)
    assert error["lastError"] == "CONTAINER_EXIT_3"
    job = error["jobs"][0]
    assert (job["statusCd"], job["exitCode"]) == ("FAILED", 3)
    assert "fail_at_epoch=2 reached" in job["errorMessage"], job["errorMessage"]  # log tail

    hog = create_model(
        client, params={"total_epoch": 2, "memory_hog_mb": 256}, resources={"memory_mb": 64}
    )
    client.post(f"/api/train/run/{hog['uuid']}")
    oom = wait_for_status(client, hog["uuid"], "statusCd", "ERROR", 90)
    assert oom["lastError"] == "OOM_KILLED"
    assert oom["jobs"][0]["oomKilled"] is True


def test_container_is_hardened(client: FlaskClient, workers, trainer_image: str) -> None:
    workers("node-a")
    model = create_model(client, params={"total_epoch": 20, "epoch_seconds": 1})
    job = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]
    wait_until(lambda: _container(job["containerName"]), 30, "container")
    attrs = _container(job["containerName"]).attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["Memory"] > 0
    assert not any("docker.sock" in bind for bind in host.get("Binds") or [])
    labels = attrs["Config"]["Labels"]
    assert labels["trainyard.job_id"] == str(job["id"])
    assert labels["trainyard.model_uuid"] == model["uuid"]
    assert labels["trainyard.node"] == "node-a"
    assert attrs["HostConfig"]["AutoRemove"] is False
    client.post(f"/api/train/cancel/{model['uuid']}")
