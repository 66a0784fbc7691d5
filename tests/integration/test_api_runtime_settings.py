"""A model's runtime settings (shmSizeMb, env, network) and an optional dataset, through the
real API and PostgreSQL: stored and answered as given, defaults documented in
trainer/README.md ("Sandbox"), every bad value a 400 naming the field or the key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Model
from app.domain import sandbox
from app.factory import create_app
from tests.conftest import JsonWritesClient
from tests.integration.helpers import create_model

BODY: dict[str, Any] = {
    "modelNo": "G1",
    "modelVer": "v1",
    "params": {"total_epoch": 2, "val_interval": 1},
}


def _models(db: sessionmaker[Session]) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(Model)) or 0)


def _refused(client: FlaskClient, db: sessionmaker[Session], *named: str, **body: Any) -> str:
    response = client.post("/api/models", json={**BODY, **body})
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "INVALID_FIELD", error
    for name in named:
        assert name in error["message"], (name, error["message"])
    assert _models(db) == 0
    return str(error["message"])


@pytest.fixture
def network_client(
    settings: Settings, db: sessionmaker[Session], broker: redis.Redis
) -> Iterator[FlaskClient]:
    """An API whose deployment allows networked jobs (JOB_NETWORK_ALLOWED=1)."""
    flask_app: Flask = create_app(settings.with_overrides(job_network_allowed=True))
    flask_app.test_client_class = JsonWritesClient
    yield flask_app.test_client()
    flask_app.extensions["trainyard"].dispose()


def test_defaults_are_answered(client: FlaskClient) -> None:
    created = create_model(client)
    detail = client.get(f"/api/models/{created['uuid']}").get_json()["data"]
    for answer in (created, detail):
        assert answer["shmSizeMb"] is None  # the default: half the memory limit, >= 1024 MB
        assert answer["env"] == {}
        assert answer["network"] is False
        assert answer["dataset"] is None and answer["usesDataset"] is True


def test_settings_are_stored_and_answered(client: FlaskClient) -> None:
    env = {"OMP_NUM_THREADS": "2", "HF_HOME": "/scratch/hf", "EMPTY": "", "PATH": "/opt/venv/bin"}
    created = create_model(
        client, shmSizeMb=2048, env=env, resources={"memory_mb": 8192}, dataset=None
    )
    detail = client.get(f"/api/models/{created['uuid']}").get_json()["data"]
    for answer in (created, detail):
        assert answer["shmSizeMb"] == 2048
        assert answer["env"] == env
        assert answer["network"] is False
        assert answer["dataset"] is None and answer["usesDataset"] is False


def test_shm_may_equal_the_memory_limit(client: FlaskClient) -> None:
    created = create_model(client, shmSizeMb=512, resources={"memory_mb": 512})
    assert created["shmSizeMb"] == 512


@pytest.mark.parametrize(
    "name",
    [
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "TRAINYARD_SCRATCH_DIR",
        "TRAINYARD_ANYTHING",
    ],
)
def test_platform_owned_env_names_are_refused_by_name(
    client: FlaskClient, db: sessionmaker[Session], name: str
) -> None:
    message = _refused(client, db, "env", name, "set by the platform", env={name: "x"})
    assert message.startswith("env:"), message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OMP_NUM_THREADS": 2}, ("env.OMP_NUM_THREADS", "string")),
        ({"OK": None}, ("env.OK",)),
        ({"1ABC": "x"}, ("env", "'1ABC'", "variable name")),
        ({"A-B": "x"}, ("env", "'A-B'")),
        ({"": "x"}, ("env", "''")),
        ({"BIG": "x" * (sandbox.ENV_MAX_VALUE_CHARS + 1)}, ("env", "BIG", "4096")),
        ({f"V{i}": "x" for i in range(sandbox.ENV_MAX_VARS + 1)}, ("env", "at most 64")),
    ],
)
def test_bad_env_is_a_400_naming_it(
    client: FlaskClient, db: sessionmaker[Session], env: dict[str, Any], named: tuple[str, ...]
) -> None:
    _refused(client, db, *named, env=env)


def test_env_must_be_an_object(client: FlaskClient, db: sessionmaker[Session]) -> None:
    _refused(client, db, "env", env=["A=1"])
    _refused(client, db, "env", env="A=1")


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("1g", ("shmSizeMb", "integer")),
        (1024.0, ("shmSizeMb", "integer")),
        (0, ("shmSizeMb", "greater than or equal to 16")),
        (sandbox.MAX_SIZE_MB + 1, ("shmSizeMb", "less than or equal")),
    ],
)
def test_bad_shm_size_is_a_400(
    client: FlaskClient, db: sessionmaker[Session], value: Any, named: tuple[str, ...]
) -> None:
    _refused(client, db, *named, shmSizeMb=value)


def test_shm_above_the_memory_limit_is_a_400(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    _refused(
        client, db, "shmSizeMb", "resources.memory_mb", shmSizeMb=4097,
        resources={"memory_mb": 4096},
    )  # fmt: skip


def test_network_is_refused_where_the_deployment_forbids_it(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    _refused(client, db, "network", "JOB_NETWORK_ALLOWED=0", network=True)
    assert create_model(client, network=False)["network"] is False


@pytest.mark.parametrize("value", ["bridge", "none", 1, None])
def test_network_is_a_boolean(
    network_client: FlaskClient, db: sessionmaker[Session], value: Any
) -> None:
    _refused(network_client, db, "network", "boolean", network=value)


def test_network_where_the_deployment_allows_it(network_client: FlaskClient) -> None:
    created = create_model(network_client, network=True)
    detail = network_client.get(f"/api/models/{created['uuid']}").get_json()["data"]
    assert created["network"] is True and detail["network"] is True


def test_dataset_absent_null_or_named(client: FlaskClient, settings: Settings) -> None:
    (settings.dataset_root / "mine").mkdir(parents=True)
    absent = create_model(client)
    none = create_model(client, dataset=None)
    named = create_model(client, dataset="mine")
    assert (absent["dataset"], absent["usesDataset"]) == (None, True)
    assert (none["dataset"], none["usesDataset"]) == (None, False)
    assert (named["dataset"], named["usesDataset"]) == ("mine", True)
