"""The chaos suite's own stack: a PostgreSQL cluster, a Redis, the API and two worker nodes,
each a child process of the harness on a free port in a temporary directory. Faults are
injected by PID (the process the harness started, or the PID a server wrote for itself) —
never by process name, so nothing outside this stack is ever touched. The shared PostgreSQL
(5432) and Redis (6379) are not used at all.

The Docker engine is shared, so every container check and every clean-up filters on this
stack's installation id (the `trainyard.installation` label the workers put on containers).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

import docker
import httpx
import psycopg

from app.devstack import _gunicorn_no_control_socket
from tests.workers.docker_proxy import DockerProxy

ROOT = Path(__file__).resolve().parents[2]
TRAINER_IMAGE = "trainyard/trainer:latest"
LIVE = ("QUEUED", "RUNNING")
TERMINAL = ("SUCCESS", "FAILED", "STOPPED", "CANCELED")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except Exception:  # a service mid-restart answers with errors; keep asking
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


class Child:
    """One process the harness started, in its own session (so its whole group can be
    signalled through its PID) with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def start(self) -> Child:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        """Signal the process group this child leads (its PID is the group id)."""
        if self.pid is not None:
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        if self.pid is not None:
            self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(20)
        self.process = None

    def terminate(self, timeout_s: float = 20) -> None:
        if self.pid is None:
            self.process = None
            return
        assert self.process is not None
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None


def _pg_bin(tool: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise RuntimeError(f"no {tool} under /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres() -> list[str]:
    """initdb and postgres refuse to run as root; as root, run them as the postgres user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class PostgresCluster:
    """A throw-away cluster (initdb) on a free port; the postmaster's PID is read from the
    postmaster.pid it writes."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "pg"
        self.log = base / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql+psycopg://trainyard@127.0.0.1:{self.port}/trainyard"

    def _run(self, *argv: str) -> None:
        # Output to the log, never a pipe: the postmaster pg_ctl starts would inherit a pipe
        # and hold it open, and waiting for its end would wait for the server's.
        with self.log.open("ab") as log:
            subprocess.run(
                [*_as_postgres(), *argv], check=True, stdout=log, stderr=log, timeout=120
            )

    def init(self) -> None:
        self.dir.mkdir(mode=0o700)
        self.log.touch()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.log, "postgres", "postgres")
        self._run(
            _pg_bin("initdb"), "-D", str(self.dir), "-U", "trainyard", "--auth=trust", "-E", "UTF8"
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=400 -c shared_buffers=64MB"
        )
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.dir),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "start",
        )
        with psycopg.connect(self.admin_dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE trainyard")

    def admin_dsn(self, database: str = "trainyard") -> str:
        return f"host=127.0.0.1 port={self.port} user=trainyard dbname={database}"

    @property
    def pid(self) -> int:
        return int((self.dir / "postmaster.pid").read_text().splitlines()[0])

    def restart_immediate(self) -> None:
        """`pg_ctl restart -m immediate`: SIGQUIT to the postmaster's PID, no checkpoint, crash
        recovery at the next start — what a power cut does to the database."""
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.dir),
            "-l",
            str(self.log),
            "-m",
            "immediate",
            "-w",
            "restart",
        )

    def stop(self) -> None:
        if (self.dir / "postmaster.pid").exists():
            subprocess.run(
                [
                    *_as_postgres(),
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.dir),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )


class RedisServer:
    """redis-server without persistence: killed and started again, it comes back empty."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child = Child(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--maxmemory-policy",
                "noeviction",
            ],
            dict(os.environ),
            base / "redis.log",
        )

    def start(self) -> None:
        self.child.start()
        wait_until(self._ping, 20, "redis to answer")

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")


@dataclass
class StackConfig:
    node_lost_after_s: float = 12.0
    worker_concurrency: int = 4
    extra_worker_env: dict[str, str] = field(default_factory=dict)


class Stack:
    """PostgreSQL, Redis, the API (gunicorn) and two worker nodes: chaos-a and chaos-b.
    chaos-b talks to Docker through a proxy the harness can kill (Docker API unreachable)."""

    NODES = ("chaos-a", "chaos-b")

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.base = Path(tempfile.mkdtemp(prefix="trainyard-chaos-"))
        os.chmod(self.base, 0o755)  # the postgres user must reach its data directory
        self.output_root = self.base / "outputs"
        self.dataset_root = self.base / "datasets"
        self.pg = PostgresCluster(self.base)
        self.redis = RedisServer(self.base)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.proxy = DockerProxy(self.base / "docker.sock")
        self.api: Child | None = None
        self.workers: dict[str, Child] = {}
        self.installation = ""
        self.docker = docker.from_env(timeout=60)
        self.http = httpx.Client(base_url=self.api_url, timeout=30)

    # --- processes ------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.pg.url,
            "BROKER_URL": self.redis.url,
            "OUTPUT_ROOT": str(self.output_root),
            "DATASET_ROOT": str(self.dataset_root),
            "TRAINYARD_HOME": str(self.base / "home"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.output_root.mkdir()
        self.dataset_root.mkdir()
        self.pg.init()
        from app.db.migrate import upgrade

        upgrade(self.pg.url)
        with self.sql() as conn:
            self.installation = conn.execute("SELECT id FROM tb_installation").fetchone()[0]
        self.redis.start()
        self.proxy.start()
        self.start_api()
        for node in self.NODES:
            self.start_worker(node)

    def start_api(self) -> None:
        self.api = Child(
            "api",
            [
                sys.executable,
                "-m",
                "app.cli",
                "api",
                "--bind",
                f"127.0.0.1:{self.api_port}",
                "--workers",
                "2",
                "--threads",
                "8",
                "--graceful-timeout",
                "3",
                *_gunicorn_no_control_socket(),
            ],
            self.env(),
            self.base / "api.log",
        ).start()
        wait_until(lambda: self.http.get("/api/health").status_code == 200, 60, "the API")

    def worker_env(self, node: str) -> dict[str, str]:
        env = {
            **self.env(),
            "NODE_NAME": node,
            "NODE_GPUS": "",
            "WORKER_RUNTIME": "docker",
            "STOP_GRACE_S": "2",
            "SUPERVISE_INTERVAL_S": "0.5",
            "SWEEP_INTERVAL_S": "1",
            "REQUEUE_AFTER_S": "3",
            "CLAIM_LOST_AFTER_S": "10",
            "RETRY_BACKOFF_S": "1",
            "RETRY_BACKOFF_MAX_S": "5",
            "NODE_LOST_AFTER_S": str(self.config.node_lost_after_s),
            "WORKER_CONCURRENCY": str(self.config.worker_concurrency),
            "DEFAULT_JOB_MEMORY_MB": "512",
            # Two containers a node on any machine (the default is one per CPU), so a few
            # jobs spread over both nodes and a burst queues the same way everywhere.
            "NODE_MAX_JOBS": "2",
            **self.config.extra_worker_env,
        }
        if node == "chaos-b":
            env["DOCKER_HOST"] = f"unix://{self.proxy.path}"
        return env

    def start_worker(self, node: str, **env: str) -> Child:
        worker = Child(
            f"worker-{node}",
            [sys.executable, "-m", "workers.main"],
            {**self.worker_env(node), **env},
            self.base / f"worker-{node}.log",
        )
        already = len(worker.log())
        worker.start()
        self.workers[node] = worker
        wait_until(lambda: "ready." in worker.log()[already:], 90, f"worker {node} to start")
        return worker

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.kill()
        if self.api is not None:
            self.api.kill()
        self.redis.child.kill()
        self.proxy.kill()
        self.remove_own_containers()
        self.pg.stop()
        self.http.close()
        shutil.rmtree(self.base, ignore_errors=True)

    # --- what the stack holds ----------------------------------------------------------------

    def sql(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.admin_dsn(), autocommit=True, connect_timeout=5)

    def own_containers(self) -> list[Any]:
        """Containers of this installation only: the engine is shared."""
        if not self.installation:
            return []
        return self.docker.containers.list(
            all=True, filters={"label": f"trainyard.installation={self.installation}"}
        )

    def remove_own_containers(self) -> None:
        for container in self.own_containers():
            container.remove(force=True)

    def job_counts(self, since_id: int = 0) -> dict[str, int]:
        """Jobs by status (those with an id >= since_id)."""
        with self.sql() as conn:
            rows = conn.execute(
                "SELECT status_cd, count(*) FROM tb_model_train_job WHERE id >= %s GROUP BY 1",
                (since_id,),
            )
            return dict(rows.fetchall())

    def next_job_id(self) -> int:
        """The id the next job will get (ids are never reused: a sequence)."""
        with self.sql() as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM tb_model_train_job")
            return int(row.fetchone()[0])

    def at_rest(self) -> bool:
        """No live job, no unsent outbox message, no container of ours left."""
        with self.sql() as conn:
            live = conn.execute(
                "SELECT count(*) FROM tb_model_train_job WHERE status_cd IN ('QUEUED','RUNNING')"
            ).fetchone()[0]
            outbox = conn.execute(
                "SELECT count(*) FROM tb_outbox"
                " WHERE published_dttm IS NULL AND given_up_dttm IS NULL"
            ).fetchone()[0]
        return live == 0 and outbox == 0 and not self.own_containers()

    # --- the API, as a client sees it --------------------------------------------------------

    def create_model(self, params: dict[str, Any], resources: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {
            "modelNo": "G1",
            "modelVer": "v1.0.0",
            "trainType": "GENERAL",
            "memo": "chaos",
            "params": params,
        }
        if resources:
            body["resources"] = resources
        response = self.http.post("/api/models", json=body)
        response.raise_for_status()
        return str(response.json()["data"]["uuid"])

    def command(
        self, uid: str, command: str, key: str | None = None, timeout_s: float = 30
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}  # a command, even without a body
        if key:
            headers["Idempotency-Key"] = key
        return self.http.post(f"/api/train/{command}/{uid}", headers=headers, timeout=timeout_s)

    def run_with_retries(self, uid: str, deadline_s: float = 90) -> httpx.Response:
        """POST run with one Idempotency-Key, retried through connection errors and 5xx (as a
        client behind a flaky API would): the answer must be the one original answer."""
        key = f"chaos-{uuid.uuid4()}"
        t0 = time.monotonic()
        while True:
            try:
                response = self.command(uid, "run", key)
                if response.status_code < 500:
                    return response
            except httpx.HTTPError:
                pass
            if time.monotonic() - t0 > deadline_s:
                raise TimeoutError(f"POST run {uid} kept failing for {deadline_s} s")
            time.sleep(0.5)
