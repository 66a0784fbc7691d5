"""Shared fixtures: a real PostgreSQL database and a real Redis, reset between tests.

TEST_DATABASE_URL and TEST_BROKER_URL point at them (scripts/services.sh starts both);
a test that needs them fails loudly when they are down instead of being skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.datastructures import Headers

from app.config import Settings, load_settings
from app.db.migrate import upgrade
from app.db.models import Base, Installation
from app.db.session import make_engine, make_session_factory
from app.factory import create_app

#: "gw0", "gw1", ... in a pytest-xdist worker (`make test` runs the suite in parallel); None when
#: pytest runs alone. Each worker gets a database and a Redis DB of its own: tests empty them.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _per_worker_database(url: str, worker: str | None) -> str:
    return url if worker is None else f"{url}_{worker}"


def _per_worker_redis(url: str, worker: str | None) -> str:
    """gw0 keeps the configured DB number, gw1 the one below it, and so on (15, 14, 13...)."""
    if worker is None:
        return url
    base, number = url.rsplit("/", 1)
    return f"{base}/{int(number) - int(worker.removeprefix('gw'))}"


TEST_DATABASE_URL = _per_worker_database(
    os.environ.get(
        "TEST_DATABASE_URL",
        "postgresql+psycopg://trainyard:trainyard@127.0.0.1:5432/trainyard_test",
    ),
    XDIST_WORKER,
)
TEST_BROKER_URL = _per_worker_redis(
    os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15"), XDIST_WORKER
)

#: Tests that start worker processes, containers, browsers, image builds or whole stacks run
#: one after another within their xdist group; everything else (domain, API, metrics, gate)
#: spreads over the xdist workers around them. Two groups, so the two workers of `make test`
#: each take one (about half the Docker time each): what runs side by side shares the engine
#: but never an installation (each worker has its own database, so its own installation id)
#: and never a node's containers. Within a group they must not overlap: two hostile-trainer
#: stacks side by side removed each other's containers when they restarted (that failed CI
#: while the groups silently did not take: pytest 9.2, see below).
SERIAL_GROUPS = {
    "chaos": "stacks",
    "deploy": "stacks",
    "e2e": "stacks",
    "trainer": "stacks",
    "runtime": "nodes",
    "security": "nodes",
    "workers": "nodes",
}
SERIAL_DIRS = tuple(SERIAL_GROUPS)


def _group(item: pytest.Item) -> str | None:
    top = item.path.resolve().relative_to(Path(__file__).resolve().parent).parts[0]
    return SERIAL_GROUPS.get(top)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Marks each test of a serial directory with its group as it is collected, before any
    collection_modifyitems hook (xdist's reads the groups there)."""
    group = _group(item)
    if group is not None:
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under `--dist loadgroup` xdist groups a test by the `@group` its hook appends to the
    test's id. Where that does not take (pytest 9.2 with pytest-xdist 3.8: the id is derived
    from a field xdist does not set), the Docker tests would run beside each other and remove
    each other's containers: stop at once with the reason, rather than fail at random."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    serial = tuple(f"tests/{name}/" for name in SERIAL_DIRS)
    ungrouped = [nodeid for nodeid in ids if nodeid.startswith(serial) and "@" not in nodeid]
    if ungrouped:
        pytest.exit(
            f"{len(ungrouped)} tests of tests/{{{','.join(SERIAL_DIRS)}}} lost their xdist group "
            f"(e.g. {ungrouped[0]}): pytest {pytest.__version__} and this pytest-xdist do not "
            "work together for --dist loadgroup; install pytest<9.2 (pyproject.toml)",
            returncode=3,
        )


def _ensure_database(url: str) -> None:
    """A worker's own database, created on first use (the role has createdb)."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    server, name = conninfo.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    if XDIST_WORKER is not None:
        _ensure_database(TEST_DATABASE_URL)
    engine = make_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(TEST_DATABASE_URL)  # the real migrations, from an empty database
    yield engine
    engine.dispose()


def empty_database(engine: Engine) -> None:
    """Every table emptied, ids from 1 again. tb_installation is made once with the schema,
    like alembic_version: it stays (workers refuse to start without it)."""
    tables = ", ".join(
        t.name for t in Base.metadata.sorted_tables if t.name != Installation.__tablename__
    )
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(pg_engine: Engine) -> sessionmaker[Session]:
    """A session factory on an emptied database."""
    empty_database(pg_engine)
    return make_session_factory(pg_engine)


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings().with_overrides(
        database_url=TEST_DATABASE_URL,
        broker_url=TEST_BROKER_URL,
        api_token=None,
        output_root=tmp_path / "outputs",
        dataset_root=tmp_path / "datasets",
        display_tz="Asia/Seoul",
        list_count_cache_s=0,  # tests read their own writes at once
        live_images_cache_s=0,
    )


class JsonWritesClient(FlaskClient):
    """Sends what every real client sends (the dashboard, an HTTP client given the header
    by hand): Content-Type application/json on every request, also a command with no body.
    A test that passes `data=`, `content_type=` or a Content-Type header of its own gets
    exactly that (the 415 tests do)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        own = kwargs.keys() & {"json", "data", "content_type"}
        if not own and "Content-Type" not in Headers(kwargs.get("headers")):
            kwargs["content_type"] = "application/json"
        return super().open(*args, **kwargs)


@pytest.fixture
def app(settings: Settings, db: sessionmaker[Session], broker: redis.Redis) -> Iterator[Flask]:
    flask_app = create_app(settings)
    flask_app.test_client_class = JsonWritesClient
    yield flask_app
    flask_app.extensions["trainyard"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
