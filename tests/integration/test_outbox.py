"""Commit, then publish: a command whose publish fails is not lost (real Redis, stopped and
started on a spare port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import OutboxMessage
from app.services.outbox import pending_count, publish_pending
from app.services.publisher import CeleryPublisher
from tests.integration.helpers import create_model, queued_tasks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server process that the test can stop and start again."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (scripts/services.sh installs it)"
        self.process = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def spare_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def test_command_commits_while_the_broker_is_down_and_the_relay_publishes_later(
    client: FlaskClient, app, db: sessionmaker[Session], spare_redis: RedisServer
) -> None:
    app.extensions["trainyard"].publisher = CeleryPublisher(spare_redis.url, timeout_s=1)
    model = create_model(client)

    started = time.monotonic()
    response = client.post(f"/api/train/run/{model['uuid']}")  # broker not running
    assert response.status_code == 200, "the command is recorded even when the broker is down"
    assert time.monotonic() - started < 10, "a down broker must not hang the request"
    job_id = response.get_json()["data"]["job"]["id"]
    with db() as session:
        row = session.scalars(select(OutboxMessage)).one()
        assert row.published_dttm is None and row.attempts == 1 and row.last_error
        assert pending_count(session) == 1

    spare_redis.start()
    publisher = CeleryPublisher(spare_redis.url, timeout_s=1)
    assert publish_pending(db, publisher) == 1
    assert publish_pending(db, publisher) == 0  # published once, never again
    tasks = queued_tasks(redis.Redis(port=spare_redis.port), "launch.cpu")
    assert [(t["task"], t["kwargs"]) for t in tasks] == [
        ("trainyard.launch_job", {"job_id": job_id})
    ]
    with db() as session:
        assert pending_count(session) == 0


def test_publish_after_commit_marks_the_row(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis
) -> None:
    model = create_model(client)
    client.post(f"/api/train/run/{model['uuid']}")
    with db() as session:
        row = session.scalars(select(OutboxMessage)).one()
        assert row.published_dttm is not None and row.last_error is None
    assert len(queued_tasks(broker, "launch.cpu")) == 1
