"""The images of a compose deployment, built here with no registry and no index in the build:
the trainer and the app image on the locally bootstrapped base (scripts/build-images.sh,
scripts/build-app-image.sh), and the app image run as a worker the way docker-compose.yml runs
it: Docker-out-of-Docker through the host's socket, the data at its host path."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from flask.testing import FlaskClient

from app.config import Settings
from app.domain import layout
from app.services.queries import installation_id
from tests.conftest import TEST_BROKER_URL, TEST_DATABASE_URL
from tests.integration.helpers import create_model
from tests.workers.conftest import (
    ROOT,
    docker_client,
    remove_installation_containers,
    wait_for_status,
    wait_until,
)

BASE_IMAGE = "trainyard/base:bookworm"
APP_IMAGE = "trainyard/app:test"


@pytest.fixture(scope="module")
def app_image(trainer_image: str) -> str:
    """Built by the script the docs tell an operator to run (its base exists: trainer_image
    built it)."""
    env = {**os.environ, "BASE_IMAGE": BASE_IMAGE, "TRAINYARD_APP_IMAGE": APP_IMAGE}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-app-image.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(result.stdout)
    return APP_IMAGE


def _run(image: str, *argv: str, **kwargs: object) -> str:
    client = docker_client()
    assert client is not None
    return client.containers.run(image, list(argv), remove=True, **kwargs).decode()


def test_images_build_on_the_local_base(trainer_image: str, app_image: str) -> None:
    client = docker_client()
    assert client is not None
    base_layers = client.images.get(BASE_IMAGE).attrs["RootFS"]["Layers"]
    for tag in (trainer_image, app_image):
        layers = client.images.get(tag).attrs["RootFS"]["Layers"]
        assert layers[: len(base_layers)] == base_layers, f"{tag} is built on {BASE_IMAGE}"
    config = client.images.get(app_image).attrs["Config"]
    assert config["User"] == "1000"
    assert "/opt/trainyard/bin" in next(e for e in config["Env"] if e.startswith("PATH="))
    assert "usage: trainyard" in _run(app_image, "trainyard", "--help")
    # The image carries its migrations: a database comes up to head inside it.
    out = _run(app_image, "sh", "-c", "trainyard migrate && trainyard migrate")
    assert out.count("database at head") == 2
    modules = "import app.factory, workers.main, workers.tasks, flower, gunicorn; print('ok')"
    assert _run(app_image, "python", "-c", modules).strip() == "ok"
    # Installed, not editable: the code is the wheel's, and no source folder is in the image.
    where = "import app, trainer; print(app.__file__, trainer.TRAIN_SCRIPT.is_file())"
    installed, trainer_found = _run(app_image, "python", "-c", where).split()
    assert installed.startswith("/opt/trainyard/lib/") and trainer_found == "True"


def test_the_app_image_serves_no_public_api_without_a_token(app_image: str) -> None:
    """Its CMD (`trainyard api --bind 0.0.0.0:8000`) and a bare gunicorn (GUNICORN_CMD_ARGS
    loads the same hook) both stop before binding (app/serve.py)."""
    client = docker_client()
    assert client is not None
    env = {"DATABASE_URL": TEST_DATABASE_URL, "BROKER_URL": TEST_BROKER_URL}
    bare_gunicorn = ["gunicorn", "--bind", "0.0.0.0:8000", "app.factory:create_app()"]
    for command in (None, bare_gunicorn):
        container = client.containers.run(app_image, command, environment=env, detach=True)
        try:
            # A server that started would still be running: wait() then times out (a failure).
            status = container.wait(timeout=60)
            logs = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        assert status["StatusCode"] == 1, logs
        assert "refusing to serve the API on 0.0.0.0:8000 without API_TOKEN" in logs, logs


@pytest.fixture
def worker_container(
    app_image: str, settings: Settings, tmp_path: Path, db, broker
) -> Iterator[docker.models.containers.Container]:
    """The app image as compose's worker-cpu: the host's Docker socket, the data mounted at
    its host path, uid 1000 with the socket's group."""
    client = docker_client()
    assert client is not None
    for folder in (settings.output_root, settings.dataset_root, tmp_path / "home"):
        folder.mkdir(parents=True, exist_ok=True)
    for folder in (tmp_path, settings.output_root, settings.dataset_root, tmp_path / "home"):
        folder.chmod(0o777)  # the worker runs as uid 1000, like on a real host
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    container = client.containers.run(
        app_image,
        ["trainyard", "worker"],
        detach=True,
        name=f"trainyard-test-worker-{os.getpid()}",
        network_mode="host",  # the test's PostgreSQL and Redis listen on 127.0.0.1
        group_add=[str(socket_gid)],
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(tmp_path): {"bind": str(tmp_path), "mode": "rw"},  # the same path
        },
        environment={
            "DATABASE_URL": TEST_DATABASE_URL,
            "BROKER_URL": TEST_BROKER_URL,
            "OUTPUT_ROOT": str(settings.output_root),
            "DATASET_ROOT": str(settings.dataset_root),
            "TRAINYARD_HOME": str(tmp_path / "home"),
            "NODE_NAME": "dood-node",
            "WORKER_RUNTIME": "docker",
            "SUPERVISE_INTERVAL_S": "0.5",
            "SWEEP_INTERVAL_S": "1",
            "LOG_FORMAT": "json",
        },
    )
    try:
        wait_until(lambda: b" ready." in container.logs(), 60, "the worker container to start")
        yield container
    finally:
        logs = container.logs().decode(errors="replace")
        container.remove(force=True)
        with db() as session:  # this database's training containers only: the engine is shared
            remove_installation_containers(installation_id(session))
        if "Traceback" in logs:
            print(f"--- worker container log ---\n{logs[-4000:]}")


def test_worker_container_trains_through_the_host_engine(
    client: FlaskClient, worker_container, settings: Settings
) -> None:
    model = create_model(client, params={"total_epoch": 4, "val_interval": 2})
    client.post(f"/api/train/run/{model['uuid']}")
    done = wait_for_status(client, model["uuid"], "statusCd", "COMPLETED", 120)
    assert done["jobs"][0]["node"] == "dood-node"
    # The trainer container (a sibling, started by the host's engine) wrote to the host path.
    train = layout.train_dir(settings.output_root, model["uuid"])
    assert (train / "val.csv").read_text().count("\n") == 3
    logs = worker_container.logs().decode()
    assert f'"model_uuid": "{model["uuid"]}"' in logs and '"node": "dood-node"' in logs
