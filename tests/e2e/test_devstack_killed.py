"""`make run`'s devstack killed outright (SIGKILL: an OOM kill, `kill -9`, a closed terminal
that took only the parent): nothing it started may keep running and holding the ports, or the
next `make run` fails on "port in use" with no process of ours to stop (issue 12 #10)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from tests.e2e.test_make_run import MARK, _free_port, _marked
from tests.workers.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_devstack_takes_its_services_with_it(tmp_path: Path) -> None:
    mark = os.urandom(8).hex()
    ports = {"api": _free_port(), "flower": _free_port(), "redis": _free_port()}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "BROKER_URL", "WORKER_RUNTIME"}
        and not key.startswith(("FLOWER_", "NODE_", "PYTEST_"))
    }
    env.update(
        {
            MARK: mark,
            "TRAINYARD_HOME": str(tmp_path / "home"),
            "FLOWER_PORT": str(ports["flower"]),
            "REDIS_PORT": str(ports["redis"]),
            "NODE_NAME": "killed-devstack",
            "DOCKER_HOST": f"unix://{tmp_path}/no-docker-engine.sock",
            "API_WORKERS": "1",
        }
    )
    log_path = tmp_path / "devstack.log"
    with log_path.open("wb") as log:
        devstack = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "devstack", "--port", str(ports["api"]), "--no-seed"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "trainyard is up" in log_path.read_text(errors="replace")
            or devstack.poll() is not None,
            180,
            "devstack to come up",
            every_s=0.5,
        )
        assert devstack.poll() is None, log_path.read_text(errors="replace")[-3000:]
        assert all(_answers(port) for port in ports.values())
        services = [pid for pid, _ in _marked(mark, tmp_path) if pid != devstack.pid]
        assert len(services) >= 4, services  # redis, gunicorn (+ its worker), worker, flower

        devstack.send_signal(signal.SIGKILL)  # devstack only: no handler runs, no cleanup
        devstack.wait(10)

        wait_until(lambda: not any(_answers(p) for p in ports.values()), 30, "ports to free")
        wait_until(lambda: not _marked(mark, tmp_path), 30, "every service to end")
    finally:
        for pid, _ in _marked(mark, tmp_path):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def test_a_worker_that_hangs_at_start_makes_devstack_stop_what_it_started(tmp_path: Path) -> None:
    """The worker's start hangs (its Docker engine accepts and never answers): devstack gives up
    after --ready-timeout, says which service, exits 1, and the API, Redis and worker it started
    are gone with it, not left answering on their ports (issue 12 #10, second half)."""
    mark = os.urandom(8).hex()
    ports = {"api": _free_port(), "redis": _free_port()}
    silent_engine = socket.socket(socket.AF_UNIX)
    silent_engine.bind(str(tmp_path / "silent-docker.sock"))
    silent_engine.listen(16)  # connections are accepted by the kernel; nothing ever answers
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "BROKER_URL"}
        and not key.startswith(("FLOWER_", "NODE_", "PYTEST_"))
    }
    env.update(
        {
            MARK: mark,
            "TRAINYARD_HOME": str(tmp_path / "home"),
            "REDIS_PORT": str(ports["redis"]),
            "NODE_NAME": "hanging-worker",
            "WORKER_RUNTIME": "docker",
            "DOCKER_HOST": f"unix://{tmp_path}/silent-docker.sock",
            "API_WORKERS": "1",
        }
    )
    argv = ["devstack", "--port", str(ports["api"]), "--no-seed", "--no-flower"]
    try:
        run = subprocess.run(
            [sys.executable, "-m", "app.cli", *argv, "--ready-timeout", "15"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=180,
        )
        log = run.stdout.decode(errors="replace")
        assert run.returncode == 1, log[-3000:]
        assert "error: worker not ready after 15s" in log, log[-3000:]
        assert "stopping api" in log, log[-3000:]
        assert not any(_answers(port) for port in ports.values())
        assert not _marked(mark, tmp_path)
    finally:
        silent_engine.close()
        for pid, _ in _marked(mark, tmp_path):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
