"""The real stack for hostile-trainer tests: an API served by gunicorn and one worker node, in
processes whose environment holds a distinctive API_TOKEN (and DATABASE_URL), so a file that
links to /proc/self/environ would leak exactly those; PostgreSQL, Redis and Docker are real.

Module-scoped: every case shares one node and one API server. A case that wedges either (a
FIFO read, a row lock held forever) leaves it for the next one, so the fixture restarts both
after a case that found problems, after removing that case's model folders.

Both processes run under an address-space limit: a reader of /dev/zero or of a 5 GB line must
fail there with MemoryError, not take the shared machine's memory.
"""

from __future__ import annotations

import hashlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.config import load_settings
from app.datasets import generate_demo_dataset
from app.domain.timefmt import as_utc, utcnow
from app.services.queries import installation_id
from tests.conftest import TEST_BROKER_URL, TEST_DATABASE_URL, empty_database
from tests.workers.conftest import (
    WorkerProcess,
    docker_client,
    remove_installation_containers,
    trainer_image,
    wait_until,
)

__all__ = ["trainer_image"]  # the session fixture, re-exported for this folder

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_CONTEXT = Path(__file__).resolve().parent / "hostile"
HOSTILE_IMAGE = "trainyard/hostile-trainer:test"
NODE = "hostile-node"
NODE_LOST_AFTER_S = 15.0
#: Address-space cap of the API and the worker: far above their need, far below the machine.
MEMORY_LIMIT_BYTES = 3 * 1024**3
#: The secret every answer is checked for: distinctive, and in the API's and worker's env.
SECRET_TOKEN = f"hostile-canary-{secrets.token_hex(12)}"
#: DATABASE_URL's "user:password@": appears in no answer unless an environment leaked.
DB_CREDENTIALS = TEST_DATABASE_URL.split("//", 1)[1].split("@", 1)[0] + "@"


def _limit_address_space() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def _limit_memory() -> None:  # runs in the child, before exec
    os.setsid()
    _limit_address_space()


@pytest.fixture(scope="module")
def hostile_image(trainer_image: str) -> str:
    """Build the test-only hostile image from tests/security/hostile, unless it is current."""
    client = docker_client()
    assert client is not None, "no Docker engine answers"
    digest = hashlib.sha256()
    for path in sorted(HOSTILE_CONTEXT.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(client.images.get(trainer_image).id.encode())
    want = digest.hexdigest()[:16]
    try:
        have = client.images.get(HOSTILE_IMAGE).labels.get("trainyard.hostile.hash")
    except docker.errors.ImageNotFound:
        have = None
    if have != want:
        subprocess.run(
            [
                "docker", "build", "-q",
                "--build-arg", f"TRAINER_IMAGE={trainer_image}",
                "--label", f"trainyard.hostile.hash={want}",
                "-t", HOSTILE_IMAGE, str(HOSTILE_CONTEXT),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return HOSTILE_IMAGE


class LimitedWorker(WorkerProcess):
    """tests/workers' WorkerProcess, started under the memory limit."""

    before_exec = staticmethod(_limit_address_space)


class ApiServer:
    """gunicorn serving create_app() from the environment, as a deployment does."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_path = log_dir / "api.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ApiServer:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", "1", "--threads", "8", "--timeout", "300",
                *_own_control_socket(self.log_path.parent),
                "app.factory:create_app()",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_memory,
        )
        wait_until(self.healthy, 60, "the API server to answer")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/health", timeout=3).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


def _own_control_socket(folder: Path) -> list[str]:
    """gunicorn >= 23 opens a control socket at one path per user; give this server its own
    (other helpers' servers run beside it)."""
    from gunicorn.config import KNOWN_SETTINGS

    if any(setting.name == "control_socket" for setting in KNOWN_SETTINGS):
        return ["--control-socket", str(folder / "gunicorn.ctl")]
    return []


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    engine: Engine
    api: ApiServer
    worker: LimitedWorker

    @property
    def output_root(self) -> Path:
        return Path(self.env["OUTPUT_ROOT"])

    def heartbeat_age_s(self) -> float | None:
        with self.engine.connect() as conn:
            seen = conn.execute(
                text("SELECT last_seen_dttm FROM tb_node WHERE name = :n"), {"n": NODE}
            ).scalar()
        return None if seen is None else (utcnow() - as_utc(seen)).total_seconds()

    def healthy(self) -> bool:
        age = self.heartbeat_age_s()
        return (
            self.worker.process is not None
            and self.worker.process.poll() is None
            and age is not None
            and age < 5
            and self.api.healthy()
        )

    def restart(self, model_uuids: list[str]) -> None:
        """Kill both (a wedged thread only dies with its process), clear what the case
        planted, remove this node's containers, start both again."""
        self.worker.kill()
        self.api.stop()
        for uid in model_uuids:
            remove_tree(self.output_root / uid)
        remove_node_containers(self.engine)
        self.api.start()
        self.worker.start()
        wait_until(self.healthy, 60, "the restarted node's heartbeat")


def remove_tree(path: Path) -> None:
    """rmtree that never follows a link (a planted `train -> /etc` is unlinked, not entered)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def remove_node_containers(engine: Engine) -> None:
    """This stack's node's containers, of this database's installation only (another
    checkout's hostile stack has a node of the same name on the shared engine)."""
    with Session(engine) as session:
        remove_installation_containers(installation_id(session), NODE)


@pytest.fixture(scope="module")
def stack(
    pg_engine: Engine, hostile_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    empty_database(pg_engine)
    broker = redis.Redis.from_url(TEST_BROKER_URL)
    broker.flushdb()
    root = tmp_path_factory.mktemp("hostile")
    (root / "outputs").mkdir()
    generate_demo_dataset(root / "datasets" / "demo")
    env = {
        **os.environ,
        "DATABASE_URL": TEST_DATABASE_URL,
        "BROKER_URL": TEST_BROKER_URL,
        "API_TOKEN": SECRET_TOKEN,
        "OUTPUT_ROOT": str(root / "outputs"),
        "DATASET_ROOT": str(root / "datasets"),
        "TRAINYARD_HOME": str(root / "home"),
        "LIST_COUNT_CACHE_S": "0",
        "MALLOC_ARENA_MAX": "2",
        "PYTHONUNBUFFERED": "1",
    }
    settings = load_settings().with_overrides(
        output_root=root / "outputs", dataset_root=root / "datasets"
    )
    worker = LimitedWorker(
        settings,
        NODE,
        root,
        API_TOKEN=SECRET_TOKEN,
        # A fake GPU id: the node has a GPU pool and a lease table to keep clean. (The jobs
        # here ask for none: on a host without the NVIDIA runtime a GPU job cannot start.)
        NODE_GPUS="0",
        NODE_LOST_AFTER_S=str(NODE_LOST_AFTER_S),
        MALLOC_ARENA_MAX="2",
    )
    api = ApiServer(env, root)
    remove_node_containers(pg_engine)
    built = Stack(root=root, env=env, engine=pg_engine, api=api.start(), worker=worker.start())
    yield built
    worker.kill()
    api.stop()
    remove_node_containers(pg_engine)
    for problem in ("Traceback",):
        if problem in worker.log():
            print(f"--- worker log (tail) ---\n{worker.log()[-3000:]}")
    broker.flushdb()
    broker.close()


def file_fingerprint(path: Path) -> dict[str, Any]:
    info = path.lstat()
    return {
        "uid": info.st_uid,
        "gid": info.st_gid,
        "mode": oct(info.st_mode),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None,
    }
