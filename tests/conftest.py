"""Shared fixtures: a real PostgreSQL database and a real Redis, reset between tests.

TEST_DATABASE_URL and TEST_BROKER_URL point at them (scripts/services.sh starts both);
a test that needs them fails loudly when they are down instead of being skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.datastructures import Headers

from app.config import Settings, load_settings
from app.db.migrate import upgrade
from app.db.models import Base, Installation
from app.db.session import make_engine, make_session_factory
from app.factory import create_app

TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://trainyard:trainyard@127.0.0.1:5432/trainyard_test"
)
TEST_BROKER_URL = os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
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
