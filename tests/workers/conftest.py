"""The whole back end as it runs: the API (in-process test client), real worker processes
(`python -m workers.main`), real PostgreSQL, Redis and Docker engine.

Workers get short intervals so the tests finish quickly; everything else is production code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import docker
import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.services.queries import installation_id
from tests.conftest import TEST_BROKER_URL, TEST_DATABASE_URL
from workers.runtime.process import ProcessRuntime

ROOT = Path(__file__).resolve().parents[2]
TRAINER_IMAGE = "trainyard/trainer:latest"


def docker_client() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception:
        return None


@pytest.fixture(scope="session")
def trainer_image() -> str:
    """Build the base and trainer images once (no registry: built locally). Not the PyTorch
    example (minutes on a fresh machine): tests/e2e/test_pytorch_example.py builds that one."""
    client = docker_client()
    if client is None:
        pytest.fail("no Docker engine answers: run scripts/services.sh (it starts dockerd)")
    subprocess.run(["bash", str(ROOT / "scripts" / "build-images.sh"), "--no-examples"], check=True)
    return TRAINER_IMAGE


class WorkerProcess:
    """One node: `python -m workers.main` with its own NODE_NAME and GPU set."""

    def __init__(self, settings: Settings, node: str, log_dir: Path, **env: str) -> None:
        self.node = node
        self.log_path = log_dir / f"worker-{node}.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": TEST_DATABASE_URL,
            "BROKER_URL": TEST_BROKER_URL,
            "OUTPUT_ROOT": str(settings.output_root),
            "DATASET_ROOT": str(settings.dataset_root),
            "TRAINYARD_HOME": str(log_dir / "home"),
            "NODE_NAME": node,
            "NODE_GPUS": "",
            "WORKER_RUNTIME": "docker",
            "STOP_GRACE_S": "3",
            "SUPERVISE_INTERVAL_S": "0.5",
            "SWEEP_INTERVAL_S": "1",
            "REQUEUE_AFTER_S": "2",
            "WORKER_CONCURRENCY": "4",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    #: Runs in the child before exec (e.g. a resource limit); None: nothing.
    before_exec: Callable[[], None] | None = None

    def start(self) -> Self:
        seen = len(self.log())  # a restart appends: wait for this start's "ready."
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers.main"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self.before_exec,
        )
        wait_until(lambda: "ready." in self.log()[seen:], 60, f"worker {self.node} to start")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """A polite shutdown (SIGTERM), as an operator would do."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        """A crash: SIGKILL the whole worker, no cleanup of any kind."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


@pytest.fixture
def workers(
    settings: Settings, tmp_path: Path, db, broker
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on demand; all are stopped and their containers removed afterwards."""
    started: list[WorkerProcess] = []
    settings.output_root.mkdir(parents=True, exist_ok=True)
    settings.dataset_root.mkdir(parents=True, exist_ok=True)

    def start(node: str = "node-a", **env: str) -> WorkerProcess:
        worker = WorkerProcess(settings, node, tmp_path, **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
    with db() as session:
        installation = installation_id(session)
    for worker in started:  # trainer processes outlive their worker, as containers do
        if worker.env["WORKER_RUNTIME"] == "process":
            runtime = ProcessRuntime(
                Path(worker.env["PROCESS_STATE_DIR"]), worker.node, installation=installation
            )
            for state in runtime.list_managed(worker.node):
                runtime.remove(state.name)
    remove_installation_containers(installation)
    failed = [w for w in started if "Traceback" in w.log()]
    for worker in failed:
        print(f"--- {worker.node} log ---\n{worker.log()[-4000:]}")


def remove_installation_containers(installation: str, node: str | None = None) -> None:
    """Force-remove the training containers of one installation (of one of its nodes): never
    another's, for the engine is shared (other test processes, other checkouts)."""
    client = docker_client()
    if client is None:
        return
    labels = ["trainyard.managed=true", f"trainyard.installation={installation}"]
    if node is not None:
        labels.append(f"trainyard.node={node}")
    for container in client.containers.list(all=True, filters={"label": labels}):
        container.remove(force=True)


def model_of(client: FlaskClient, uid: str) -> dict[str, Any]:
    return client.get(f"/api/models/{uid}").get_json()["data"]


def wait_for_status(
    client: FlaskClient, uid: str, field: str, value: str, timeout_s: float = 60
) -> dict[str, Any]:
    return wait_until(
        lambda: (m := model_of(client, uid))[field] == value and m,
        timeout_s,
        f"{field} == {value} (model {uid})",
    )


def wait_running(
    client: FlaskClient, uid: str, checkpoint: int = 0, timeout_s: float = 60
) -> dict[str, Any]:
    """The model's latest job RUNNING, with a checkpoint at `checkpoint` or later."""
    return wait_until(
        lambda: (
            (m := model_of(client, uid))["jobs"]
            and m["jobs"][-1]["statusCd"] == "RUNNING"
            and (m["progress"]["checkpointEpoch"] or 0) >= checkpoint
            and m
        ),
        timeout_s,
        f"model {uid} running (checkpoint >= {checkpoint})",
    )
