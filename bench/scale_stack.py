"""The scale bench's own stack: a PostgreSQL cluster, a Redis, the API and N worker nodes, all
child processes of the bench on free ports in one temporary folder. Nothing here touches the
shared PostgreSQL (5432) or Redis (6379) of the machine.

Every process is started in a session of its own (so its whole group can be signalled through
its PID) and, where util-linux's `setpriv` exists, with a parent-death signal, so a bench killed
with SIGKILL still takes its services down. The bench is a child subreaper (as `trainyard
devstack` is): the process runtime's waiters and trainers, which are detached from their worker
on purpose, re-parent to it, and `Stack.stop` ends them by PID too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from glob import glob
from pathlib import Path
from typing import Any

import psutil
import psycopg

from app.devstack import _become_subreaper, _gunicorn_no_control_socket, _reap_adopted

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except Exception:  # a service still starting answers with errors
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def _with_parent_death_signal(
    argv: list[str], sig: str = "TERM", user: str | None = None
) -> list[str]:
    """`argv` run so that it gets `sig` when the bench dies, as `user` when given (setpriv
    execs: the PID stays the service's own)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return (["runuser", "-u", user, "--"] if user else []) + argv
    as_user = ["--reuid", user, "--regid", user, "--init-groups"] if user else []
    return [setpriv, *as_user, "--pdeathsig", sig, "--", *argv]


class Child:
    """One process the bench started, in its own session, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, grace_s: float = 20.0) -> None:
        """`sig` to its process group, then SIGKILL after `grace_s`."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(grace_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


def _pg_bin(tool: str) -> str:
    """Debian's versioned binaries (the newest), else the one on PATH."""
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if found:
        return found[-1]
    on_path = shutil.which(tool)
    if on_path is None:
        raise SystemExit(f"no {tool}: install PostgreSQL (`make services`)")
    return on_path


class Postgres:
    """A throw-away cluster (initdb, trust on 127.0.0.1) on a free port. Durability settings
    are PostgreSQL's defaults (fsync and synchronous_commit on), as in a deployment."""

    def __init__(self, base: Path, max_connections: int) -> None:
        self.dir = base / "pg"
        self.log = base / "postgres.log"
        self.port = free_port()
        self.max_connections = max_connections
        self.user = "postgres" if os.geteuid() == 0 else None  # initdb refuses root
        self.child: Child | None = None

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://trainyard@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=trainyard dbname={database}"

    def start(self) -> None:
        self.dir.mkdir(mode=0o700)
        self.log.touch()
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
            shutil.chown(self.log, self.user, self.user)
        initdb = [_pg_bin("initdb"), "-D", str(self.dir), "-U", "trainyard", "--auth=trust",
                  "-E", "UTF8"]  # fmt: skip
        with self.log.open("ab") as log:
            subprocess.run(
                (["runuser", "-u", self.user, "--"] if self.user else []) + initdb,
                check=True, stdout=log, stderr=log, timeout=180,
            )  # fmt: skip
        argv = [
            _pg_bin("postgres"), "-D", str(self.dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
            "-c", f"max_connections={self.max_connections}", "-c", "shared_buffers=128MB",
        ]  # fmt: skip
        # SIGINT is PostgreSQL's fast shutdown: sessions are ended, not waited for.
        self.child = Child("postgres", _with_parent_death_signal(argv, "INT", self.user),
                           dict(os.environ), self.log).start()  # fmt: skip
        wait_until(self._answers, 60, "PostgreSQL to accept connections")

    def _answers(self) -> bool:
        with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def processes(self) -> list[psutil.Process]:
        """The postmaster and every process it forked (backends, background workers)."""
        if self.child is None or not self.child.alive():
            return []
        try:
            postmaster = psutil.Process(self.child.process.pid)  # type: ignore[union-attr]
            return [postmaster, *postmaster.children()]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """CPU the whole cluster used so far: live processes, plus the backends that ended (the
        postmaster reaped them, so they are in its children's times)."""
        total = 0.0
        for number, process in enumerate(self.processes()):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
                if number == 0:
                    total += times.children_user + times.children_system
        return total

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(signal.SIGINT, grace_s=30)


class Redis:
    """redis-server on a free port, configured as compose runs it: append-only file on,
    `noeviction`."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        data = base / "redis"
        data.mkdir()
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("no redis-server on PATH: `make services` installs it")
        argv = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data),
            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction", "--daemonize", "no",
        ]  # fmt: skip
        self.child = Child("redis", _with_parent_death_signal(argv), dict(os.environ),
                           base / "redis.log")  # fmt: skip

    def start(self) -> None:
        self.child.start()
        wait_until(lambda: self.command("PING") in (True, "PONG"), 30, "Redis to answer")

    def command(self, *args: str) -> Any:
        import redis

        with redis.Redis(port=self.port, decode_responses=True, socket_timeout=10) as client:
            return client.execute_command(*args)

    def stop(self) -> None:
        self.child.stop(grace_s=10)


class Stack:
    """One PostgreSQL and one Redis for the whole bench; per node count a fresh database, an
    empty Redis, the API and the nodes (`start_round` / `stop_round`)."""

    def __init__(self, base: Path, max_connections: int) -> None:
        self.base = base
        self.pg = Postgres(base, max_connections)
        self.redis = Redis(base)
        self.api: Child | None = None
        self.api_url = ""
        self.nodes: dict[str, Child] = {}
        self.home = base

    def start(self) -> None:
        _become_subreaper()
        os.chmod(self.base, 0o755)  # the postgres user must reach its data directory
        self.pg.start()
        self.redis.start()

    def env(self, database: str, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.pg.url(database),
            "BROKER_URL": self.redis.url,
            "OUTPUT_ROOT": str(home / "outputs"),
            "DATASET_ROOT": str(home / "datasets"),
            "TRAINYARD_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }

    def start_api(self, env: dict[str, str], workers: int, threads: int) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "app.cli", "api", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "5",
            *_gunicorn_no_control_socket(),
        ]  # fmt: skip
        # PGAPPNAME (libpq): pg_stat_activity tells the API's connections from the nodes'.
        self.api = Child("api", _with_parent_death_signal(argv), {**env, "PGAPPNAME": "api"},
                         self.home / "api.log").start()  # fmt: skip

        def healthy() -> bool:
            import urllib.request

            with urllib.request.urlopen(f"{self.api_url}/api/health", timeout=2) as answer:
                return bool(answer.status == 200)

        wait_until(healthy, 90, "the API")

    def start_nodes(self, env: dict[str, str], names: list[str], node_env: dict[str, str]) -> None:
        """All nodes at once, then wait until each says Celery's 'ready.'."""
        for name in names:
            self.nodes[name] = Child(
                name,
                _with_parent_death_signal([sys.executable, "-m", "workers.main"]),
                {**env, **node_env, "NODE_NAME": name, "PGAPPNAME": name},
                self.home / f"worker-{name}.log",
            ).start()
        for name, child in self.nodes.items():

            def ready(child: Child = child) -> bool:
                if not child.alive():
                    raise SystemExit(f"worker {child.name} exited:\n{child.log()[-3000:]}")
                return " ready." in child.log()

            wait_until(ready, 300, f"worker {name} to start", every_s=0.5)

    def node_pids(self) -> list[int]:
        return [child.pid for child in self.nodes.values() if child.pid and child.alive()]

    def api_pids(self) -> list[int]:
        if self.api is None or not self.api.alive():
            return []
        with contextlib.suppress(psutil.NoSuchProcess):
            master = psutil.Process(self.api.pid)
            return [master.pid, *(p.pid for p in master.children())]
        return []

    def stop_round(self) -> None:
        """The nodes (Celery's soft shutdown), the API, then whatever they left behind."""
        for child in self.nodes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if child.pid:
                    os.killpg(child.pid, signal.SIGTERM)
        for child in self.nodes.values():
            child.stop(grace_s=30)
        self.nodes = {}
        if self.api is not None:
            self.api.stop(grace_s=15)
            self.api = None
        self.stop_leftovers()

    def stop_leftovers(self) -> None:
        """Descendants that are not a service (the process runtime's waiters and trainers,
        re-parented to us): SIGTERM, then SIGKILL, by PID."""
        services = {c.pid for c in (self.pg.child, self.redis.child) if c is not None and c.pid}
        leftovers = []
        for process in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                lineage = {process.pid, *(p.pid for p in process.parents())}
                if not lineage & services and process.status() != psutil.STATUS_ZOMBIE:
                    leftovers.append(process)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for process in leftovers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(sig)
            _, leftovers = psutil.wait_procs(leftovers, timeout=5)
            if not leftovers:
                break
        self.reap()

    def reap(self) -> None:
        """Collect the exit status of adopted orphans (each ended waiter), never of our own
        services, so none stays a zombie."""
        own = {c.pid for c in (self.pg.child, self.redis.child, self.api, *self.nodes.values())
               if c is not None and c.pid}  # fmt: skip
        _reap_adopted(own)

    def stop(self) -> None:
        self.stop_round()
        self.redis.stop()
        self.pg.stop()
        self.stop_leftovers()

