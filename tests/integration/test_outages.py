"""PostgreSQL or Redis down, or Redis frozen, while the API serves (issue 12, defects 4 and 9).

The faults are real and injected by PID into servers this test starts itself: its own
PostgreSQL cluster (initdb + pg_ctl on a spare port) and its own redis-server. The shared
PostgreSQL and Redis are never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.api.unavailable import RETRY_AFTER_S, unavailable_dependency
from app.config import Settings
from app.db.migrate import upgrade
from app.db.models import Job, Node
from app.factory import create_app
from app.services.outbox import pending_count
from app.services.sync import SYNC_TIMEOUT_S
from tests.conftest import JsonWritesClient
from tests.integration.helpers import create_model, queued_tasks
from tests.integration.test_outbox import RedisServer, _free_port

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PostgresCluster:
    """A throwaway PostgreSQL cluster: started, stopped (`-m immediate`) and started again."""

    def __init__(self) -> None:
        assert PG_BIN, "PostgreSQL server binaries not found under /usr/lib/postgresql"
        self.bin = PG_BIN[-1]
        self.port = _free_port()
        # initdb refuses to run as root: then the cluster belongs to the postgres user, in a
        # folder it can enter (pytest's tmp_path is private to root).
        self.as_root = os.geteuid() == 0
        self.home = Path(tempfile.mkdtemp(prefix="trainyard-outage-pg-"))
        if self.as_root:
            shutil.chown(self.home, "postgres")
        self.data = self.home / "data"
        self.url = f"postgresql+psycopg://trainyard@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "trainyard",
                  "--no-sync", "-E", "UTF8")  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.home / "log"), "-w", "start")  # fmt: skip

    def stop_immediately(self) -> None:
        """`pg_ctl stop -m immediate` signals the postmaster by the PID in postmaster.pid."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop_immediately()
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    upgrade(cluster.url)  # the real migrations
    yield cluster
    cluster.remove()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)  # a frozen one must be able to exit
    server.stop()


def _app(settings: Settings, **overrides: Any) -> Flask:
    app = create_app(settings.with_overrides(**overrides))
    app.test_client_class = JsonWritesClient
    return app


def _assert_unavailable(response: Any, code: str) -> None:
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    assert response.get_json()["error"]["code"] == code
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)


def _put_on_live_node(factory: sessionmaker[Session], job_id: int) -> None:
    """The job is on node-1, which beats: a status sync asks it."""
    now = datetime.now(UTC)
    with factory.begin() as session:
        session.get(Job, job_id).node = "node-1"
        session.merge(Node(name="node-1", started_dttm=now, last_seen_dttm=now))


def test_database_down_answers_503_with_retry_after_and_health_names_it(
    settings: Settings, broker: redis.Redis, own_postgres: PostgresCluster
) -> None:
    app = _app(settings, database_url=own_postgres.url)
    client = app.test_client()
    model = create_model(client)
    uid = model["uuid"]
    assert client.get("/api/models/list").status_code == 200

    own_postgres.stop_immediately()
    _assert_unavailable(client.get("/api/models/list"), "DATABASE_UNAVAILABLE")
    _assert_unavailable(client.get(f"/api/models/{uid}"), "DATABASE_UNAVAILABLE")
    _assert_unavailable(client.post(f"/api/train/run/{uid}"), "DATABASE_UNAVAILABLE")
    _assert_unavailable(client.post(f"/api/train/status/{uid}"), "DATABASE_UNAVAILABLE")
    health = client.get("/api/health")
    assert health.status_code == 503 and health.headers["Retry-After"] == str(RETRY_AFTER_S)
    data = health.get_json()["data"]
    assert data["status"] == "degraded" and data["down"] == ["database"]
    assert data["database"] == {"ok": False, "error": "unreachable"}
    assert data["broker"] == {"ok": True}
    body = health.get_data(as_text=True)
    for secret in ("127.0.0.1", str(own_postgres.port), "trainyard@"):
        assert secret not in body, f"the open health check shows {secret}"

    own_postgres.start()
    health = client.get("/api/health")
    assert health.status_code == 200 and health.get_json()["data"]["down"] == []
    assert client.get("/api/models/list").status_code == 200
    assert client.get(f"/api/models/{uid}").status_code == 200
    assert client.post(f"/api/train/run/{uid}").status_code == 200
    assert client.post(f"/api/train/status/{uid}").status_code == 200
    app.extensions["trainyard"].dispose()


def test_broker_down_commands_commit_and_only_health_is_503(
    settings: Settings, db: sessionmaker[Session], own_redis: RedisServer
) -> None:
    app = _app(settings, broker_url=own_redis.url, publish_timeout_s=1.0)
    client = app.test_client()
    running, idle = create_model(client), create_model(client)
    job_id = client.post(f"/api/train/run/{running['uuid']}").get_json()["data"]["job"]["id"]
    _put_on_live_node(db, job_id)

    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGKILL)
    own_redis.process.wait(10)
    own_redis.process = None

    run = client.post(f"/api/train/run/{idle['uuid']}")  # committed; the outbox keeps the task
    assert run.status_code == 200 and run.get_json()["data"]["statusCd"] == "IN_PROGRESS"
    with db() as session:
        assert pending_count(session) == 1  # the launch, for the relay to publish later
    sync = client.post(f"/api/train/status/{running['uuid']}")
    assert sync.status_code == 200  # the model as the database has it, and why it is not fresher
    assert sync.get_json()["data"]["sync"] == {
        "requested": True,
        "node": "node-1",
        "jobId": job_id,
        "answered": False,
        "reason": "broker unavailable; the model is as the database has it",
    }
    health = client.get("/api/health")
    assert health.status_code == 503 and health.headers["Retry-After"] == str(RETRY_AFTER_S)
    data = health.get_json()["data"]
    assert data["down"] == ["broker"] and data["broker"] == {"ok": False, "error": "unreachable"}
    assert str(own_redis.port) not in health.get_data(as_text=True)

    own_redis.start()  # empty, on the same port: health recovers
    assert client.get("/api/health").status_code == 200
    app.extensions["trainyard"].dispose()


def test_a_frozen_broker_holds_no_request_past_its_bound(
    settings: Settings, db: sessionmaker[Session], own_redis: RedisServer
) -> None:
    """Redis SIGSTOPped: status syncs, commands, health and /metrics, several at once, each
    end within the documented bound (SYNC_TIMEOUT_S + 2 * PUBLISH_TIMEOUT_S), not when Redis
    thaws."""
    publish_timeout_s = 1.0
    bound_s = SYNC_TIMEOUT_S + 2 * publish_timeout_s
    app = _app(settings, broker_url=own_redis.url, publish_timeout_s=publish_timeout_s)
    client = app.test_client()
    running = create_model(client)
    idle = [create_model(client) for _ in range(3)]
    job_id = client.post(f"/api/train/run/{running['uuid']}").get_json()["data"]["job"]["id"]
    _put_on_live_node(db, job_id)
    calls = [("POST", f"/api/train/status/{running['uuid']}", 200)] * 6
    calls += [("POST", f"/api/train/run/{model['uuid']}", 200) for model in idle]
    calls += [("GET", "/api/health", 503), ("GET", "/metrics", 200)]

    took: dict[int, tuple[float, int]] = {}

    def call(index: int, method: str, path: str, _expected: int) -> None:
        started = time.monotonic()
        status = app.test_client().open(path, method=method).status_code
        took[index] = (time.monotonic() - started, status)

    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    freeze_s = bound_s + 10  # longer than the bound: a call that waits for the thaw shows
    threads = [threading.Thread(target=call, args=(i, *item)) for i, item in enumerate(calls)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(freeze_s)
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    for thread in threads:
        thread.join(30)

    slack_s = 2.0
    for index, (method, path, expected) in enumerate(calls):
        seconds, status = took[index]
        assert seconds < bound_s + slack_s, f"{method} {path} held its thread {seconds:.1f} s"
        assert status == expected, f"{method} {path} answered {status}"
    with db() as session:
        assert pending_count(session) == len(idle)  # the launches, kept for the relay
    # Thawed: a sync asks the node again (none runs here, so it says it did not answer).
    after = app.test_client().post(f"/api/train/status/{running['uuid']}").get_json()["data"]
    assert after["sync"]["reason"] == f"node node-1 did not answer within {SYNC_TIMEOUT_S:g} s"
    app.extensions["trainyard"].dispose()


def test_status_sync_returns_the_node_answer(
    app: Flask, db: sessionmaker[Session], broker: redis.Redis, settings: Settings
) -> None:
    """The node's answer travels through the workers' own Celery result backend."""
    from workers.celery_app import make_celery

    client = app.test_client()
    model = create_model(client)
    job_id = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]["id"]
    _put_on_live_node(db, job_id)
    node_app = make_celery(settings.broker_url)
    answer = {"job": job_id, "state": "running"}

    def node() -> None:  # stands in for node-1's worker: takes the task, stores its result
        for _ in range(100):
            tasks = queued_tasks(broker, "node.node-1")
            if tasks:
                node_app.backend.store_result(tasks[0]["id"], answer, "SUCCESS")
                return
            time.sleep(0.05)

    thread = threading.Thread(target=node)
    thread.start()
    sync = client.post(f"/api/train/status/{model['uuid']}").get_json()["data"]["sync"]
    thread.join(10)
    assert sync == {
        "requested": True,
        "node": "node-1",
        "jobId": job_id,
        "answered": True,
        "result": answer,
    }



def test_only_an_unreachable_dependency_is_an_outage(pg_engine: Engine) -> None:
    """Real errors: a refused connection is an outage (503); a bad statement is a bug (500)."""
    dead = f"postgresql+psycopg://trainyard@127.0.0.1:{_free_port()}/postgres"
    errors: list[BaseException] = []
    for engine, statement in ((create_engine(dead), "SELECT 1"), (pg_engine, "SELEC 1")):
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        except SQLAlchemyError as exc:
            errors.append(exc)
    refused, syntax = errors
    assert unavailable_dependency(refused) == "database"
    assert unavailable_dependency(syntax) is None
    try:
        redis.Redis(port=_free_port(), socket_connect_timeout=1).ping()
    except redis.ConnectionError as exc:
        assert unavailable_dependency(exc) == "broker"
    else:
        pytest.fail("a closed port answered PING")
    assert unavailable_dependency(ValueError("a bug")) is None


def test_read_connections_the_server_closed_leave_the_pool(
    client: FlaskClient, pg_engine: Engine
) -> None:
    """A detail is read on a pooled driver connection (app/db/driver_rows.py). When the server
    ends its backends, as a restart does, the next read answers 503 and the dead connections
    leave the pool, the idle ones with it: the reads after it succeed."""
    uid = create_model(client)["uuid"]
    for _ in range(3):
        assert client.get(f"/api/models/{uid}").status_code == 200
    # Three idle connections in the read pool, as a threaded worker leaves after a busy moment.
    read_engine = client.application.extensions["trainyard"].read_engine
    held = [read_engine.raw_connection() for _ in range(3)]
    for connection in held:
        connection.close()
    with pg_engine.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    assert ended, "the API held no connection to end"
    codes = [client.get(f"/api/models/{uid}").status_code for _ in range(4)]
    assert codes == [503, 200, 200, 200], codes
