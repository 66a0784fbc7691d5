"""Two installations on one Docker engine, with the same node name (as two stacks on one host
get by default), 20 jobs each submitted at once with room for all of them: each runs its own
jobs to the end, and neither's reconcile adopts, stops or removes the other's containers (issue
12 #2). (On a small shared machine the 40 launches take longer than one run lasts, so not all
40 containers need be alive at one instant; the two installations' runs do overlap.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import text

from app.config import Settings
from app.db.migrate import upgrade
from app.db.session import make_engine
from app.factory import create_app
from tests.conftest import TEST_DATABASE_URL, JsonWritesClient
from tests.integration.helpers import create_model
from tests.workers.conftest import docker_client, wait_for_status

SECOND_BROKER_URL = os.environ.get("TEST_SECOND_BROKER_URL", "redis://127.0.0.1:6379/9")
JOBS_EACH = 20
PARAMS = {"total_epoch": 4, "val_interval": 2, "epoch_seconds": 5}
# Room for all of them on one node each: NODE_MAX_JOBS, and memory promised per container.
CAPACITY = {"NODE_MAX_JOBS": str(JOBS_EACH), "DEFAULT_JOB_MEMORY_MB": "128"}


def _second_database_url() -> str:
    parts = urlsplit(TEST_DATABASE_URL)
    return urlunsplit(parts._replace(path=parts.path + "_second"))


@pytest.fixture
def second_client(settings: Settings, tmp_path: Path) -> Iterator[FlaskClient]:
    """A second installation: its own database (made here, empty) and its own broker."""
    url = _second_database_url()
    name = urlsplit(url).path.lstrip("/")
    admin = make_engine(TEST_DATABASE_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    upgrade(url)
    broker = redis.Redis.from_url(SECOND_BROKER_URL)
    broker.flushdb()
    second = settings.with_overrides(
        database_url=url, broker_url=SECOND_BROKER_URL, output_root=tmp_path / "outputs-2"
    )
    second.output_root.mkdir(parents=True)
    app = create_app(second)
    app.test_client_class = JsonWritesClient
    yield app.test_client()
    app.extensions["trainyard"].dispose()
    broker.flushdb()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_two_installations_share_an_engine_and_a_node_name(
    client: FlaskClient, second_client: FlaskClient, workers, trainer_image: str, tmp_path: Path
) -> None:
    workers("shared-node", **CAPACITY)
    workers(
        "shared-node",
        **CAPACITY,
        DATABASE_URL=_second_database_url(),
        BROKER_URL=SECOND_BROKER_URL,
        OUTPUT_ROOT=str(tmp_path / "outputs-2"),
        TRAINYARD_HOME=str(tmp_path / "home-2"),
    )
    runs = {}
    for api in (client, second_client):
        for _ in range(JOBS_EACH):
            uid = create_model(api, params=PARAMS)["uuid"]
            runs[uid] = (api, api.post(f"/api/train/run/{uid}").get_json()["data"]["job"])

    names = {job["containerName"] for _, job in runs.values()}
    assert len(names) == 2 * JOBS_EACH, "job ids repeat across installations; names must not"
    for uid, (api, _) in runs.items():
        done = wait_for_status(api, uid, "statusCd", "COMPLETED", 300)
        assert [j["statusCd"] for j in done["jobs"]] == ["SUCCESS"]
        assert done["progress"]["epochsDone"] == PARAMS["total_epoch"]

    # Side by side: the two installations' containers were alive at the same time.
    first, second = _container_spans(TEST_DATABASE_URL), _container_spans(_second_database_url())
    assert len(first) == len(second) == JOBS_EACH
    both_started = max(min(s for s, _ in first), min(s for s, _ in second))
    one_done = min(max(e for _, e in first), max(e for _, e in second))
    assert both_started < one_done, "the installations' runs did not overlap"

    engine = docker_client()
    assert engine is not None
    left = [c.name for c in engine.containers.list(all=True) if c.name in names]
    assert left == [], "each installation removed its own containers"


def _container_spans(database_url: str) -> list[tuple[datetime, datetime]]:
    """(start, end) of every job's container, as the container itself reported them."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT started_dttm, container_ended_dttm FROM tb_model_train_job")
            ).all()
    finally:
        engine.dispose()
    return [(start, end) for start, end in rows]
