"""docker-compose.yml run end to end on this host's engine, with nothing pulled from a registry.

The stack is the real file plus an override (written here) that adds a second CPU worker
(`worker-cpu-2`, NODE_NAME cpu-2) and shortens intervals. PostgreSQL and Redis are the images
scripts/build-service-images.sh makes from Debian packages (POSTGRES_IMAGE / REDIS_IMAGE), the
app image is scripts/build-app-image.sh's, tagged by a hash of its sources so an unchanged tree
reuses it. Every image is checked to exist before `up`, which gets `--no-build` (and
`--pull never` where the compose CLI has it): the test never pulls.

From outside, over the published ports: create, run on each node, cancel, resume, test, metrics,
Flower's worker list; one worker container restarted while its job runs (the job completes
once); then `down -v` leaves no container, volume or training container of this stack.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.domain import layout
from tests.workers.conftest import docker_client, wait_until

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "trainyard/base:bookworm"
POSTGRES_IMAGE = "trainyard/postgres:15"
REDIS_IMAGE = "trainyard/redis:7"
#: What the app image is built from: a change to any of these makes a new tag.
APP_SOURCES = ("Dockerfile", "pyproject.toml", "app", "workers", "trainer")
SECRETS = {
    "POSTGRES_PASSWORD": "e2e-pg-pw",
    "REDIS_PASSWORD": "e2e-redis-pw",
    "API_TOKEN": "e2e-api-token",
    "FLOWER_BASIC_AUTH": "admin:e2e-flower-pw",
}
#: Faster than production so the test stays short; the wiring is the file's own.
FAST_WORKER_ENV = {
    "SUPERVISE_INTERVAL_S": "0.5",
    "SWEEP_INTERVAL_S": "2",
    "REQUEUE_AFTER_S": "5",
    "STOP_GRACE_S": "3",
    "WORKER_CONCURRENCY": "2",
}
NODES = ("cpu-1", "cpu-2")


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    probe = [docker, "compose", "version"] if docker else None
    if probe and subprocess.run(probe, capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _source_hash() -> str:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", *APP_SOURCES],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    digest = hashlib.sha256()
    for name in sorted(listed):
        path = ROOT / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _run_script(script: str, **env: str) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / script)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout)


@pytest.fixture(scope="module")
def images(trainer_image: str) -> dict[str, str]:
    """Every image the stack runs, built here if missing (trainer_image built the base)."""
    client = docker_client()
    assert client is not None
    _run_script("build-service-images.sh")  # keeps images whose hash label still matches
    app_image = f"trainyard/app:e2e-{_source_hash()}"
    try:
        client.images.get(app_image)
    except Exception:
        _run_script("build-app-image.sh", BASE_IMAGE=BASE_IMAGE, TRAINYARD_APP_IMAGE=app_image)
    tags = {"app": app_image, "postgres": POSTGRES_IMAGE, "redis": REDIS_IMAGE,
            "trainer": trainer_image}
    for tag in tags.values():
        client.images.get(tag)  # raises ImageNotFound: nothing below may pull it
    return tags


def _override(data_dir: Path) -> dict[str, Any]:
    """worker-cpu-2 is worker-cpu under another NODE_NAME; every healthcheck polls faster."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    override: dict[str, Any] = {}
    for name in ("postgres", "redis", "api", "flower", "worker-cpu"):
        override[name] = {"healthcheck": {**services[name]["healthcheck"], "interval": "2s",
                                          "start_period": "0s", "retries": 60}}
    override["worker-cpu"]["environment"] = dict(FAST_WORKER_ENV)
    second = copy.deepcopy(services["worker-cpu"])
    second["environment"].update(FAST_WORKER_ENV, NODE_NAME=NODES[1])
    second["healthcheck"] = override["worker-cpu"]["healthcheck"]
    override["worker-cpu-2"] = second
    return {"services": override}


@dataclass
class Stack:
    compose: Callable[..., subprocess.CompletedProcess[str]]
    api: httpx.Client
    flower_url: str
    data_dir: Path
    installation: str
    project: str

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def worker_log(self, service: str) -> str:
        return self.compose("logs", "--no-color", service).stdout


@pytest.fixture(scope="module")
def stack(images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    client = docker_client()
    assert client is not None
    project = f"tye2e{os.getpid()}"
    data_dir = tmp_path_factory.mktemp("compose-data")
    for folder in (data_dir, data_dir / "outputs", data_dir / "datasets"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o777)  # the app containers run as uid 1000
    override = data_dir.parent / "compose.e2e.yml"
    override.write_text(yaml.safe_dump(_override(data_dir)))
    api_port, flower_port = _free_port(), _free_port()
    env = {
        **os.environ,
        **SECRETS,
        "TRAINYARD_IMAGE": images["app"],
        "TRAINER_IMAGE": images["trainer"],
        "POSTGRES_IMAGE": images["postgres"],
        "REDIS_IMAGE": images["redis"],
        "TRAINYARD_DATA": str(data_dir),
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "API_BIND": "127.0.0.1",
        "API_PORT": str(api_port),
        "API_WORKERS": "2",
        "FLOWER_PORT": str(flower_port),
        "POSTGRES_PUBLISH_PORT": str(_free_port()),
        "REDIS_PUBLISH_PORT": str(_free_port()),
        "CPU_NODE_NAME": NODES[0],
        "LOG_FORMAT": "text",
    }
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]

    def compose(*args: str, check: bool = True, timeout: float = 240):
        result = subprocess.run(
            [*cli, "-p", project, *files, *args], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"compose {args}: {result.stdout}\n{result.stderr}"
        return result

    never_pull = ["--pull", "never"] if cli[-1] == "compose" else []
    installation = ""
    try:
        started = time.monotonic()
        compose("up", "-d", "--no-build", *never_pull, timeout=300)
        services = compose("config", "--services").stdout.split()
        assert {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-cpu-2", "flower"} \
            <= set(services)
        wait_until(lambda: _all_healthy(compose), 180, "every service's healthcheck")
        print(f"compose up → all healthy in {time.monotonic() - started:.1f} s")
        installation = compose(
            "exec", "-T", "postgres", "psql", "-U", "trainyard", "-d", "trainyard", "-tAc",
            "SELECT id FROM tb_installation",
        ).stdout.strip()
        assert installation
        with httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {SECRETS['API_TOKEN']}"},
            timeout=30,
        ) as api:
            yield Stack(compose, api, f"http://127.0.0.1:{flower_port}", data_dir,
                        installation, project)
    finally:
        failed = compose("ps", check=False).stdout
        print(failed)
        if os.environ.get("E2E_KEEP_LOGS"):
            print(compose("logs", "--no-color", "--tail", "80", check=False).stdout)
        compose("down", "-v", "--remove-orphans", "-t", "15", check=False)
        if installation:  # training containers of this stack only (its installation id)
            for leftover in client.containers.list(
                all=True, filters={"label": f"trainyard.installation={installation}"}
            ):
                leftover.remove(force=True)


def _all_healthy(compose: Callable[..., subprocess.CompletedProcess[str]]) -> bool:
    ids = compose("ps", "-q").stdout.split()
    client = docker_client()
    assert client is not None
    states = []
    for container_id in ids:
        attrs = client.api.inspect_container(container_id)
        service = attrs["Config"]["Labels"]["com.docker.compose.service"]
        state = attrs["State"]
        if service == "migrate":
            assert state["Status"] != "exited" or state["ExitCode"] == 0, "migrate failed"
            states.append(state["Status"] == "exited")
        else:
            assert state["Status"] != "exited", f"{service} exited"
            states.append(state.get("Health", {}).get("Status") == "healthy")
    return len(ids) == 7 and all(states)


def _model(api: httpx.Client, uid: str) -> dict[str, Any]:
    return api.get(f"/api/models/{uid}").json()["data"]


def _post(api: httpx.Client, path: str, expect: int = 200) -> dict[str, Any]:
    response = api.post(path, json={})
    assert response.status_code == expect, f"POST {path}: {response.status_code} {response.text}"
    return response.json()["data"]


def _create(api: httpx.Client, **params: Any) -> str:
    body = {"modelNo": "G1", "modelVer": "v1.0.0", "trainType": "GENERAL",
            "params": {"total_epoch": 4, "val_interval": 2, **params}}
    response = api.post("/api/models", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]["uuid"]


def _wait_model(api: httpx.Client, uid: str, check: Callable[[dict[str, Any]], bool],
                what: str, timeout_s: float = 120) -> dict[str, Any]:
    return wait_until(lambda: (m := _model(api, uid)) and check(m) and m, timeout_s, what,
                      every_s=0.5)


def _on_node(stack: Stack, node: str, **params: Any) -> str:
    """Run a new model on `node`: the other node is drained (its flag file in TRAINYARD_HOME,
    the shared data folder) until the job has been claimed."""
    other = next(n for n in NODES if n != node)
    flag = stack.data_dir / f"drain-{other}"
    other_service = "worker-cpu" if other == NODES[0] else "worker-cpu-2"
    message = f"node {other} is draining"
    before = stack.worker_log(other_service).count(message)
    flag.touch()
    try:
        wait_until(lambda: stack.worker_log(other_service).count(message) > before, 30,
                   f"{other} to stop taking jobs", every_s=0.5)
        uid = _create(stack.api, **params)
        _post(stack.api, f"/api/train/run/{uid}")
        claimed = _wait_model(stack.api, uid, lambda m: m["jobs"] and m["jobs"][-1]["node"],
                              "a claim")
        assert claimed["jobs"][-1]["node"] == node
    finally:
        flag.unlink()
    return uid


def _epochs(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    column = lines[0].split(",").index("epoch")
    return [int(line.split(",")[column]) for line in lines[1:]]


def test_compose_stack_end_to_end(stack: Stack) -> None:
    api, started, outputs = stack.api, time.monotonic(), stack.data_dir / "outputs"
    assert api.get("/api/health").status_code == 200
    assert httpx.post(f"{api.base_url}/api/models", json={}).status_code == 401  # no token

    # One run on each node; both complete and their metrics are served.
    runs = {node: _on_node(stack, node) for node in NODES}
    for node, uid in runs.items():
        done = _wait_model(api, uid, lambda m: m["statusCd"] == "COMPLETED", "run completed")
        assert [(j["node"], j["statusCd"]) for j in done["jobs"]] == [(node, "SUCCESS")]
        points = api.get(f"/api/models/{uid}/metrics?split=train").json()["data"]["points"]
        assert len(points) == 4
    assert "trainyard" in api.get("/metrics").text  # Prometheus

    # Test (evaluation) of the cpu-1 run, on whichever node takes it.
    uid = runs[NODES[0]]
    _post(api, f"/api/train/test/run/4/{uid}")
    tested = _wait_model(api, uid, lambda m: m["step2Status"] == "COMPLETED", "test completed")
    assert tested["jobs"][-1]["statusCd"] == "SUCCESS"
    assert api.get(f"/api/models/{uid}/metrics/test").status_code == 200

    # Cancel, then resume from the checkpoint; no epoch twice.
    uid = _on_node(stack, NODES[1], total_epoch=8, epoch_seconds=0.7)
    _wait_model(api, uid, lambda m: (m["progress"]["checkpointEpoch"] or 0) >= 2, "checkpoint 2")
    assert _post(api, f"/api/train/cancel/{uid}")["statusCd"] == "STOPPED"
    _wait_model(api, uid, lambda m: m["jobs"][0]["statusCd"] == "CANCELED", "job canceled")
    _post(api, f"/api/train/resume/{uid}")
    done = _wait_model(api, uid, lambda m: m["statusCd"] == "COMPLETED", "resumed run completed")
    assert [j["statusCd"] for j in done["jobs"]] == ["CANCELED", "SUCCESS"]
    assert _epochs(layout.train_dir(outputs, uid) / "train.csv") == list(range(1, 9))

    # Flower lists both nodes, behind its basic auth.
    assert httpx.get(f"{stack.flower_url}/api/workers").status_code == 401
    user, password = SECRETS["FLOWER_BASIC_AUTH"].split(":")
    listed = wait_until(
        lambda: (w := httpx.get(f"{stack.flower_url}/api/workers?refresh=1",
                                auth=(user, password), timeout=30).json())
        and {name.split("@")[0] for name in w} >= set(NODES) and w,
        60, "Flower listing both nodes", every_s=1,
    )
    print("flower workers:", sorted(listed))

    # A worker container restarted while its job runs: the training container (on the host
    # engine) keeps going, and the job is recorded once when it ends.
    uid = _on_node(stack, NODES[1], total_epoch=12, epoch_seconds=1)
    _wait_model(api, uid, lambda m: m["jobs"][-1]["statusCd"] == "RUNNING", "job running")
    before = stack.container("worker-cpu-2")
    restarted_at = time.monotonic()
    stack.compose("restart", "-t", "15", "worker-cpu-2")
    print(f"worker-cpu-2 restarted in {time.monotonic() - restarted_at:.1f} s")
    assert stack.container("worker-cpu-2") == before  # the same container, restarted
    assert _model(api, uid)["jobs"][-1]["statusCd"] == "RUNNING", "the job outlives the restart"
    done = _wait_model(api, uid, lambda m: m["statusCd"] == "COMPLETED", "completed after restart")
    assert [(j["node"], j["statusCd"]) for j in done["jobs"]] == [(NODES[1], "SUCCESS")]
    assert _epochs(layout.train_dir(outputs, uid) / "train.csv") == list(range(1, 13))
    print(f"API flow in {time.monotonic() - started:.1f} s")


def test_compose_down_leaves_nothing_behind(stack: Stack) -> None:
    client = docker_client()
    assert client is not None
    label = {"label": f"trainyard.installation={stack.installation}"}
    wait_until(lambda: not client.containers.list(all=True, filters=label), 30,
               "training containers removed after recording")
    stack.compose("down", "-v", "--remove-orphans", "-t", "15")
    project = {"label": f"com.docker.compose.project={stack.project}"}
    assert client.containers.list(all=True, filters=project) == []
    assert client.volumes.list(filters=project) == []
    assert client.containers.list(all=True, filters=label) == []
    assert [n.name for n in client.networks.list(filters=project)] == []
