"""The user commands of `trainyard` as a script or CI job runs them: subprocesses against the
real API over HTTP and a real worker (issue 14, item 5). `wait` exits 0 when the run ended
COMPLETED and 1 when it did not; the model's uuid and every answer come from the CLI itself."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.e2e.conftest import LiveServer
from tests.workers.conftest import ROOT


def _cli_env(live_server: LiveServer, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: this server, no config file, no token of the caller's."""
    env = {
        **os.environ,
        "TRAINYARD_URL": live_server.url,
        "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
    }
    env.pop("TRAINYARD_TOKEN", None)
    return env


def _trainyard(
    live_server: LiveServer, tmp_path: Path, *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=_cli_env(live_server, tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _create(live_server: LiveServer, tmp_path: Path, *options: str) -> dict[str, Any]:
    created = _trainyard(
        live_server, tmp_path, "models", "create", "--model-ver", "v1", "--json", *options
    )
    assert created.returncode == 0, created.stderr
    return json.loads(created.stdout)


def test_wait_exits_0_on_completed_and_1_on_a_failed_run(
    live_server: LiveServer, workers: Any, tmp_path: Path
) -> None:
    workers("cli-node", WORKER_RUNTIME="process", PROCESS_STATE_DIR=str(tmp_path / "proc"))
    good = _create(live_server, tmp_path, "--epochs", "4", "--val-interval", "2",
                   "--set", "epoch_seconds=0.3")
    bad = _create(live_server, tmp_path, "--epochs", "4", "--set", "fail_at_epoch=2")
    for model in (good, bad):
        ran = _trainyard(live_server, tmp_path, "run", model["uuid"])
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith(f"run: model {model['uuid']} IN_PROGRESS")

    waited = _trainyard(live_server, tmp_path, "wait", good["uuid"], "--interval", "0.5")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert waited.stdout.strip() == f"model {good['uuid']}: COMPLETED"
    assert live_server.model(good["uuid"])["statusCd"] == "COMPLETED"

    failed = _trainyard(live_server, tmp_path, "wait", bad["uuid"], "--interval", "0.5", "--json")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    final = json.loads(failed.stdout)
    assert (final["statusCd"], final["lastError"]) == ("ERROR", "CONTAINER_EXIT_3")

    # The test of a trained epoch, waited for as a CI job would.
    tested = _trainyard(live_server, tmp_path, "test", good["uuid"], "4")
    assert tested.returncode == 0, tested.stderr
    waited = _trainyard(
        live_server, tmp_path, "wait", good["uuid"], "--test", "--interval", "0.5"
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert waited.stdout.strip() == f"test {good['uuid']}: COMPLETED"

    shown = _trainyard(live_server, tmp_path, "models", "show", good["uuid"])
    assert "TRAIN" in shown.stdout and "EVAL" in shown.stdout and "cli-node" in shown.stdout
    nodes = _trainyard(live_server, tmp_path, "nodes", "--json")
    assert [n["name"] for n in json.loads(nodes.stdout)["nodes"]] == ["cli-node"]
    refused = _trainyard(live_server, tmp_path, "run", good["uuid"])
    assert refused.returncode == 3 and refused.stderr.startswith("error: 409 ")


def test_logs_follow_prints_lines_while_the_job_runs(
    live_server: LiveServer, workers: Any, tmp_path: Path
) -> None:
    workers("cli-node", WORKER_RUNTIME="process", PROCESS_STATE_DIR=str(tmp_path / "proc"))
    model = _create(live_server, tmp_path, "--epochs", "8", "--val-interval", "2",
                    "--set", "epoch_seconds=1")
    uid = model["uuid"]
    assert _trainyard(live_server, tmp_path, "run", uid).returncode == 0
    follower = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "logs", uid, "-f"],
        cwd=ROOT, env=_cli_env(live_server, tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in follower.stdout or []:
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=90)
        # A line arrived while the job still ran: printed live, not after the end.
        assert live_server.model(uid)["statusCd"] == "IN_PROGRESS", first
        assert follower.wait(timeout=120) == 0, follower.stderr.read() if follower.stderr else ""
    finally:
        if follower.poll() is None:
            follower.kill()
    reader.join(10)
    printed = [first, *lines.queue]
    epochs = [line.split()[1] for line in printed if line.startswith("epoch ")]
    assert epochs == [f"{n}/8" for n in range(1, 9)], printed
    assert live_server.model(uid)["statusCd"] == "COMPLETED"
