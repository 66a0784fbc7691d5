"""Scale-out on one machine: several worker processes, each a node with its own NODE_NAME.

- adding a node needs nothing but starting it: its queues follow from NODE_GPUS;
- draining a node (`trainyard drain NODE`, state in the database read at every claim; the
  legacy flag file still drains too) stops it taking new jobs while the jobs it runs finish;
  `trainyard undrain NODE` takes it back, no restart.

Nodes use the process runtime here (quick to start); the claim and queue logic is the same
for the Docker runtime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job, Node
from app.services.queries import installation_id
from tests.conftest import TEST_DATABASE_URL
from tests.integration.helpers import create_model
from tests.workers.conftest import ROOT, model_of, wait_for_status, wait_until
from workers.context import build_context
from workers.launcher import Claim, claim_job
from workers.runtime.process import ProcessRuntime
from workers.settings import NodeSettings

FAST = {"total_epoch": 4, "val_interval": 2, "epoch_seconds": 0.2}


def _node(workers: Any, tmp_path: Path, name: str, **env: str) -> Any:
    return workers(
        name,
        WORKER_RUNTIME="process",
        PROCESS_STATE_DIR=str(tmp_path / f"proc-{name}"),
        **env,
    )


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`trainyard …` as an operator runs it, with the nodes' TRAINYARD_HOME."""
    env = {
        **os.environ,
        "TRAINYARD_HOME": str(tmp_path / "home"),  # the workers fixture's home
        "DATABASE_URL": TEST_DATABASE_URL,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _job_node(client: FlaskClient, uid: str) -> str | None:
    return model_of(client, uid)["jobs"][-1]["node"]


def test_adding_a_gpu_node_picks_up_waiting_gpu_work(
    client: FlaskClient, workers, settings: Settings, tmp_path: Path
) -> None:
    _node(workers, tmp_path, "cpu-a")
    gpu_model = create_model(client, params=FAST, resources={"gpus": 1})
    cpu_model = create_model(client, params=FAST)
    client.post(f"/api/train/run/{gpu_model['uuid']}")
    client.post(f"/api/train/run/{cpu_model['uuid']}")
    wait_for_status(client, cpu_model["uuid"], "statusCd", "COMPLETED", 60)
    # No node has a GPU: the GPU job waits, unclaimed, on the launch.gpu queue.
    waiting = model_of(client, gpu_model["uuid"])["jobs"][0]
    assert (waiting["statusCd"], waiting["node"]) == ("QUEUED", None)

    # A new GPU node: only NODE_NAME and NODE_GPUS differ. It consumes launch.gpu by itself.
    gpu_node = _node(workers, tmp_path, "gpu-b", NODE_GPUS="0", LOG_FORMAT="json")
    done = wait_for_status(client, gpu_model["uuid"], "statusCd", "COMPLETED", 60)
    assert (done["jobs"][0]["node"], done["jobs"][0]["gpuIds"]) == ("gpu-b", [0])
    assert _job_node(client, cpu_model["uuid"]) == "cpu-a"

    # Its log is JSON, and the launch's lines carry the job id, the model uuid and the node.
    records = [json.loads(line) for line in gpu_node.log().splitlines() if line.startswith("{")]
    launch = [r for r in records if r["logger"] == "workers.launcher"]
    assert launch, "the launcher logged the start"
    assert launch[0]["job_id"] == done["jobs"][0]["id"]
    assert launch[0]["model_uuid"] == gpu_model["uuid"]
    assert launch[0]["node"] == "gpu-b"


def _drained_at(db: sessionmaker[Session], node: str) -> Any:
    with db() as session:
        return session.scalar(select(Node.drain_dttm).where(Node.name == node))


def test_drain_finishes_running_work_and_takes_no_new_work(
    client: FlaskClient, workers, settings: Settings, tmp_path: Path, db: sessionmaker[Session]
) -> None:
    node_a = _node(workers, tmp_path, "node-a")
    # Long enough to still run after node-b's start and the drain on a loaded machine.
    running = create_model(
        client, params={"total_epoch": 40, "val_interval": 2, "epoch_seconds": 0.5}
    )
    client.post(f"/api/train/run/{running['uuid']}")
    wait_until(
        lambda: model_of(client, running["uuid"])["jobs"][0]["statusCd"] == "RUNNING",
        30,
        "the first job running on node-a",
    )
    node_b = _node(workers, tmp_path, "node-b")

    drained = _cli(tmp_path, "drain", "node-a")
    assert drained.returncode == 0, drained.stderr
    assert "node node-a is draining" in drained.stdout
    assert "still holds 1 job(s)" in drained.stdout
    assert _drained_at(db, "node-a") is not None
    wait_until(lambda: "is draining" in node_a.log(), 10, "node-a to notice the drain")

    # New work goes to node-b only; node-a's running job finishes there.
    new = [create_model(client, params=FAST) for _ in range(3)]
    for model in new:
        client.post(f"/api/train/run/{model['uuid']}")
    for model in new:
        wait_for_status(client, model["uuid"], "statusCd", "COMPLETED", 60)
        assert _job_node(client, model["uuid"]) == "node-b"
    waited = _cli(tmp_path, "drain", "node-a", "--wait", "--interval", "0.5", "--timeout", "60")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "node node-a holds no job" in waited.stdout
    finished = model_of(client, running["uuid"])
    assert (finished["statusCd"], finished["jobs"][0]["node"]) == ("COMPLETED", "node-a")

    # Undrain node-a and drain node-b: without a restart, node-a takes the next job.
    assert _cli(tmp_path, "undrain", "node-a").returncode == 0
    assert _drained_at(db, "node-a") is None
    assert _cli(tmp_path, "drain", "node-b").returncode == 0
    wait_until(lambda: "no longer draining" in node_a.log(), 10, "node-a to take jobs again")
    wait_until(lambda: "is draining" in node_b.log(), 10, "node-b to notice its flag")
    last = create_model(client, params=FAST)
    client.post(f"/api/train/run/{last['uuid']}")
    wait_for_status(client, last["uuid"], "statusCd", "COMPLETED", 60)
    assert _job_node(client, last["uuid"]) == "node-a"


def test_a_draining_node_refuses_the_claim(
    client: FlaskClient, settings: Settings, db: sessionmaker[Session], tmp_path: Path
) -> None:
    """The guarantee under the queue courtesy: the claim itself is refused while the flag
    exists, and the job stays QUEUED and unclaimed for another node."""
    model = create_model(client, params=FAST)
    client.post(f"/api/train/run/{model['uuid']}")  # no worker runs: the job stays QUEUED
    with db() as session:
        job_id = session.scalar(select(Job.id))
    node = NodeSettings.from_env()
    flag = tmp_path / "drain-test-node"
    node = NodeSettings(**{**node.__dict__, "node": "test-node", "drain_file": flag})
    with db() as session:
        installation = installation_id(session)
    runtime = ProcessRuntime(tmp_path / "proc", "test-node", installation=installation)
    ctx = build_context(settings, node, runtime)
    try:
        flag.touch()
        answer = claim_job(ctx, job_id)
        assert answer == f"node test-node is draining: job {job_id} is left to other nodes"
        with db() as session:
            job = session.get(Job, job_id)
            assert (job.status_cd, job.node, job.claimed_dttm) == ("QUEUED", None, None)
        flag.unlink()
        claim = claim_job(ctx, job_id)
        assert isinstance(claim, Claim) and claim.job_id == job_id
    finally:
        ctx.engine.dispose()
