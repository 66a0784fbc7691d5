"""Nodes on the real stack (issue 14, item 4): worker processes, PostgreSQL, Redis. The nodes
use the process runtime (their GPUs are NODE_GPUS ids, as in test_recovery's GPU test).

- GET /api/nodes shows a node's GPUs held by the right job, and the node turns "lost" once it
  is SIGKILLed and stays silent for NODE_LOST_AFTER_S;
- a drain through the API stops new launches on the node while its running job finishes, and
  an undrain lets the waiting job launch there, without a restart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.config import Settings
from tests.integration.helpers import create_model
from tests.workers.conftest import model_of, wait_for_status, wait_running, wait_until

LOST_AFTER_S = 4


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The API presumes a node lost after LOST_AFTER_S, as the workers below do."""
    return settings.with_overrides(node_lost_after_s=float(LOST_AFTER_S))


def _node(client: FlaskClient, name: str) -> dict[str, Any]:
    nodes = client.get("/api/nodes").get_json()["data"]["nodes"]
    return next(n for n in nodes if n["name"] == name)


def _process_node(workers: Any, tmp_path: Path, name: str, **env: str) -> Any:
    return workers(
        name,
        WORKER_RUNTIME="process",
        PROCESS_STATE_DIR=str(tmp_path / f"proc-{name}"),
        NODE_LOST_AFTER_S=str(LOST_AFTER_S),
        **env,
    )


def test_gpus_show_their_job_and_a_killed_node_turns_lost(
    client: FlaskClient, workers: Any, tmp_path: Path
) -> None:
    worker = _process_node(workers, tmp_path, "gpu-a", NODE_GPUS="0,1")
    params = {"total_epoch": 60, "val_interval": 2, "epoch_seconds": 0.5}
    first = create_model(client, params=params, resources={"gpus": 1})
    second = create_model(client, params=params, resources={"gpus": 1})
    for model in (first, second):
        client.post(f"/api/train/run/{model['uuid']}")
    jobs = {}
    for model in (first, second):
        job = wait_running(client, model["uuid"])["jobs"][0]
        jobs[job["gpuIds"][0]] = (job["id"], model["uuid"])
    assert sorted(jobs) == [0, 1], "each job its own GPU"

    node = _node(client, "gpu-a")
    assert node["state"] == "alive" and node["runtime"] == "ProcessRuntime"
    assert [(g["gpuId"], g["jobId"], g["modelUuid"]) for g in node["gpus"]] == [
        (gpu, job_id, uid) for gpu, (job_id, uid) in sorted(jobs.items())
    ]
    assert (node["gpusLeased"], node["gpusFree"], node["containersRunning"]) == (2, 0, 2)
    assert {j["jobId"]: j["gpuIds"] for j in node["jobs"]} == {
        job_id: [gpu] for gpu, (job_id, _) in jobs.items()
    }

    worker.kill()  # SIGKILL to the worker's process group: no goodbye, the heartbeat stops
    lost = wait_until(
        lambda: (n := _node(client, "gpu-a"))["state"] == "lost" and n,
        LOST_AFTER_S + 15,
        "gpu-a to turn lost",
    )
    # "lost" means an age over LOST_AFTER_S; the answer rounds the age (4.03 s shows as 4.0).
    assert lost["heartbeatAgeS"] >= LOST_AFTER_S
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'trainyard_node_up{node="gpu-a"} 0.0' in metrics.splitlines()


def test_drain_through_the_api_stops_new_launches_while_the_running_job_finishes(
    client: FlaskClient, workers: Any, tmp_path: Path
) -> None:
    worker = _process_node(workers, tmp_path, "node-a")
    running = create_model(
        client, params={"total_epoch": 12, "val_interval": 2, "epoch_seconds": 0.5}
    )
    client.post(f"/api/train/run/{running['uuid']}")
    running_job = wait_running(client, running["uuid"])["jobs"][0]

    drained = client.post("/api/nodes/node-a/drain")
    assert drained.status_code == 200, drained.get_json()
    assert drained.get_json()["data"]["drain"]["draining"] is True
    wait_until(lambda: "is draining" in worker.log(), 10, "node-a to read the drain")

    waiting = create_model(client, params={"total_epoch": 2, "val_interval": 2})
    client.post(f"/api/train/run/{waiting['uuid']}")
    done = wait_for_status(client, running["uuid"], "statusCd", "COMPLETED", 90)
    assert done["jobs"][0]["node"] == "node-a", "the running job finished where it ran"
    time.sleep(3)  # more than REQUEUE_AFTER_S: the sweep has published the job again
    left = model_of(client, waiting["uuid"])["jobs"][0]
    assert (left["statusCd"], left["node"]) == ("QUEUED", None), "no launch on a drained node"
    # The drained node stopped consuming launches: it never started the waiting job. (A
    # claim refused for the drain is tests/deploy/test_scaleout.py's.)
    log = worker.log()
    assert "node node-a is draining" in log
    assert f"job {left['id']} started" not in log
    node = _node(client, "node-a")
    assert node["drain"]["draining"] and node["jobs"] == []
    assert running_job["id"] not in [j["jobId"] for j in node["jobs"]]

    undrained = client.post("/api/nodes/node-a/undrain")
    assert undrained.get_json()["data"]["drain"]["draining"] is False
    finished = wait_for_status(client, waiting["uuid"], "statusCd", "COMPLETED", 60)
    assert finished["jobs"][0]["node"] == "node-a"
