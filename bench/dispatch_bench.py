"""Dispatch, cancel and reconcile latency on a real Docker engine (figures, not assertions).

    python -m bench.dispatch_bench [--runs 20] [--inflight 200]

- dispatch: `POST /api/train/run` → the job's container running (Docker's own StartedAt),
  p50/p95 over N runs, beside a bare `docker run -d` of the same image measured in the same
  process (create + start through the Docker API, same clock).
- cancel: `POST /api/train/cancel` → the container gone, p50/p95.
- reconcile: M jobs in flight, the worker SIGKILLed and restarted → every job re-attached
  (the supervisor's startup reconcile), wall time.

Needs PostgreSQL, Redis and a Docker engine (scripts/services.sh) and the images
(scripts/build-images.sh). Uses its own database, `trainyard_bench_dispatch`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import docker
from sqlalchemy import select, text

from app.config import load_settings
from app.db.migrate import upgrade
from app.db.models import Job, Model
from app.db.session import make_engine, make_session_factory
from app.factory import create_app

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "trainyard_bench_dispatch"
JSON = "application/json"  # the API refuses writes without this Content-Type
DB_URL = f"postgresql+psycopg://trainyard:trainyard@127.0.0.1:5432/{DB_NAME}"
BROKER_URL = "redis://127.0.0.1:6379/13"
IMAGE = "trainyard/trainer:latest"
LONG_PARAMS = {"total_epoch": 1000, "val_interval": 10, "epoch_seconds": 1}


def _reset_database() -> None:
    subprocess.run(
        ["su", "postgres", "-c", f"psql -qc 'DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)'"],
        check=True,
    )
    subprocess.run(
        ["su", "postgres", "-c", f"psql -qc 'CREATE DATABASE {DB_NAME} OWNER trainyard'"],
        check=True,
    )
    upgrade(DB_URL)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(label: str, values: list[float]) -> str:
    return (
        f"{label:<34} n={len(values):<4} p50={statistics.median(values) * 1000:8.1f} ms"
        f"  p95={_percentile(values, 0.95) * 1000:8.1f} ms"
    )


def _started_at(container: docker.models.containers.Container) -> float:
    container.reload()
    value = container.attrs["State"]["StartedAt"]
    return datetime.fromisoformat(value[:26] + "+00:00" if "." in value else value).timestamp()


def _wait_container(client: docker.DockerClient, name: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            container = client.containers.get(name)
            if container.status == "running" or container.attrs["State"]["StartedAt"][:4] != "0001":
                return container
        except docker.errors.NotFound:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{name} did not start")


def _wait_gone(client: docker.DockerClient, name: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            client.containers.get(name)
        except docker.errors.NotFound:
            return
        time.sleep(0.01)
    raise TimeoutError(f"{name} still there")


def _start_worker(
    home: Path, outputs: Path, datasets: Path, settle_s: float = 4
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": DB_URL, "BROKER_URL": BROKER_URL, "OUTPUT_ROOT": str(outputs),
        "DATASET_ROOT": str(datasets), "TRAINYARD_HOME": str(home), "NODE_NAME": "bench",
        "WORKER_RUNTIME": "docker", "STOP_GRACE_S": "5", "WORKER_CONCURRENCY": "4",
        "SUPERVISE_INTERVAL_S": "1", "LOG_LEVEL": "WARNING",
    }  # fmt: skip
    log = (home / "worker.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.main"], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    time.sleep(settle_s)  # worker start: connect, startup reconcile
    return process


def _bare_docker_run(
    client: docker.DockerClient, datasets: Path, runs: int, network: str = "bridge"
) -> list[float]:
    """The baseline: create + start of the same image, no platform in between. Job
    containers get no network, so the fair baseline is `--network none`; Docker's default
    bridge (which costs a veth pair per start) is shown too."""
    out = Path(tempfile.mkdtemp(prefix="bare-"))
    out.chmod(0o777)
    latencies = []
    for i in range(runs):
        began = time.time()
        container = client.containers.run(
            IMAGE,
            ["--job-type", "TRAIN", "--output-dir", str(out / str(i)), "--dataset-dir",
             str(datasets / "demo"), "--total-epoch", "1000", "--val-interval", "10",
             "--params", '{"epoch_seconds": 1}'],
            detach=True, name=f"bench-bare-{network}-{i}", user="1000:1000", network_mode=network,
            volumes={str(out): {"bind": str(out), "mode": "rw"},
                     str(datasets): {"bind": str(datasets), "mode": "ro"}},
        )  # fmt: skip
        latencies.append(_started_at(container) - began)
        container.remove(force=True)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--inflight", type=int, default=200)
    args = parser.parse_args()

    client = docker.from_env(timeout=120)
    _reset_database()
    home = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    outputs, datasets = home / "outputs", home / "datasets"
    outputs.mkdir()
    datasets.mkdir()
    from app.datasets import generate_demo_dataset

    generate_demo_dataset(datasets / "demo")
    settings = load_settings().with_overrides(
        database_url=DB_URL, broker_url=BROKER_URL, output_root=outputs, dataset_root=datasets
    )
    api = create_app(settings).test_client()
    body = {"modelNo": "G1", "modelVer": "bench", "params": LONG_PARAMS}
    worker = _start_worker(home, outputs, datasets)
    try:
        bare_bridge = _bare_docker_run(client, datasets, args.runs, "bridge")
        bare = _bare_docker_run(client, datasets, args.runs, "none")
        dispatch, cancel = [], []
        for _ in range(args.runs):
            uid = api.post("/api/models", json=body).get_json()["data"]["uuid"]
            began = time.time()
            job = api.post(f"/api/train/run/{uid}", content_type=JSON).get_json()["data"]["job"]
            container = _wait_container(client, job["containerName"])
            dispatch.append(_started_at(container) - began)
            began = time.monotonic()
            api.post(f"/api/train/cancel/{uid}", content_type=JSON)
            _wait_gone(client, job["containerName"])
            cancel.append(time.monotonic() - began)

        print(f"\ntrainyard dispatch bench ({args.runs} runs, image {IMAGE})")
        print(_row("bare docker run, default bridge", bare_bridge))
        print(_row("bare docker run --network none", bare))
        print(_row("POST run -> container running", dispatch))
        ratio = statistics.median(dispatch) / statistics.median(bare)
        ratio95 = _percentile(dispatch, 0.95) / _percentile(bare, 0.95)
        print(f"{'ratio to bare (--network none)':<34} p50 x{ratio:.2f}  p95 x{ratio95:.2f}")
        print(_row("POST cancel -> container gone", cancel))

        reconcile = _reconcile_after_restart(api, client, worker, home, outputs, datasets, args)
        print(f"{'reconcile after worker restart':<34} {args.inflight} jobs in {reconcile:.1f} s")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        # Low-level listing: containers vanish while we go (the cancels are being processed).
        for row in client.api.containers(all=True, filters={"label": "trainyard.node=bench"}):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(row["Id"], force=True)
    return 0


def _reconcile_after_restart(api, client, worker, home, outputs, datasets, args) -> float:
    """Start M jobs, SIGKILL the worker, restart it and time until all are RUNNING again
    with their started time recorded by the new process's startup reconcile."""
    engine = make_engine(DB_URL)
    db = make_session_factory(engine)
    # Long epochs keep 200 idle trainers from saturating two cores.
    params = {**LONG_PARAMS, "epoch_seconds": 10}
    body = {"modelNo": "G2", "modelVer": "bench-inflight", "params": params,
            "resources": {"memory_mb": 96}}  # fmt: skip
    uids = [
        api.post("/api/models", json=body).get_json()["data"]["uuid"] for _ in range(args.inflight)
    ]
    for uid in uids:
        api.post(f"/api/train/run/{uid}", content_type=JSON)
    # Wait until every job runs and has reported progress, so a re-attach is visible.
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        with db() as session:
            reported = session.scalar(
                text(
                    "SELECT count(*) FROM tb_model_master WHERE model_ver = 'bench-inflight' "
                    "AND epochs_done >= 1"
                )
            )
        if reported >= args.inflight:
            break
        time.sleep(1)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    # While the worker is down, forget what it recorded so the restart must re-attach.
    with db.begin() as session:
        session.execute(text(
            "UPDATE tb_model_master SET epochs_done = NULL WHERE model_ver = 'bench-inflight'"
        ))  # fmt: skip
    began = time.monotonic()
    restarted = _start_worker(home, outputs, datasets, settle_s=0)
    worker.pid = restarted.pid  # so the caller's cleanup kills the new one
    while time.monotonic() - began < 900:
        with db() as session:
            waiting = session.scalar(text(
                "SELECT count(*) FROM tb_model_master WHERE model_ver = 'bench-inflight' "
                "AND epochs_done IS NULL"
            ))  # fmt: skip
        if waiting == 0:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - began
    with db() as session:
        running = list(
            session.scalars(
                select(Model.uuid)
                .join(Job, Job.model_id == Model.id)
                .where(Job.status_cd == "RUNNING")
            )
        )
    for uid in running:
        api.post(f"/api/train/cancel/{uid}", content_type=JSON)
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
