"""Nothing waits on a lock forever and nothing retries forever (issue 10, item 4): the
workers' database sessions carry lock and statement timeouts (real PostgreSQL), and the
outbox relay backs off and gives a row up after its last try (real Redis, on a dead port)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from psycopg.errors import LockNotAvailable, QueryCanceled
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app import messaging
from app.config import Bounds, Settings
from app.db.models import Model, OutboxMessage
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.services.outbox import enqueue, pending_count, publish_pending
from app.services.publisher import CeleryPublisher
from app.services.status_writes import lock_model
from tests.integration.helpers import create_model
from workers.context import WorkerContext, build_context
from workers.runtime.process import ProcessRuntime
from workers.settings import NodeSettings


@pytest.fixture
def worker_ctx(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The database side of a worker, built the way a node builds it, with short timeouts."""
    bounds = replace(settings.bounds, lock_timeout_s=1, statement_timeout_s=2.5)
    node = replace(NodeSettings.from_env(), node="bounds-node", state_dir=tmp_path / "p")
    runtime = ProcessRuntime(tmp_path / "p", "bounds-node", installation="bounds-test")
    ctx = build_context(settings.with_overrides(bounds=bounds), node, runtime)
    yield ctx
    ctx.engine.dispose()


def _in_thread(work: Any, timeout_s: float) -> tuple[bool, BaseException | None, float]:
    """Run `work` on a thread; (did it finish within the timeout, its error, seconds)."""
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive(), outcome.get("error"), time.monotonic() - started


def test_a_worker_blocked_on_a_model_row_lock_fails_with_lock_timeout(
    client: FlaskClient, db: sessionmaker[Session], worker_ctx: WorkerContext
) -> None:
    uid = create_model(client)["uuid"]
    holder = db()  # another session holds the model row lock and does not let go
    holder.scalars(select(Model).where(Model.uuid == uid).with_for_update()).one()

    def status_write() -> None:
        with transaction(worker_ctx.db) as session:
            lock_model(session, uid)

    try:
        finished, error, seconds = _in_thread(status_write, timeout_s=8)
        assert finished, "the worker's transaction still waits on the lock"
        assert isinstance(error, OperationalError), error
        assert isinstance(error.orig, LockNotAvailable)
        assert 0.9 <= seconds < 8
    finally:
        holder.rollback()
        holder.close()


def test_a_worker_statement_running_too_long_is_canceled(worker_ctx: WorkerContext) -> None:
    def long_statement() -> None:
        with worker_ctx.db() as session:
            session.execute(text("SELECT pg_sleep(5)"))

    finished, error, seconds = _in_thread(long_statement, timeout_s=8)
    assert finished and isinstance(error, OperationalError), error
    assert isinstance(error.orig, QueryCanceled)
    assert 2.4 <= seconds < 4.5


def _dead_broker_url() -> str:
    with socket.socket() as s:  # a port nothing listens on: every publish fails at once
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def test_the_relay_backs_off_and_gives_a_row_up_after_its_last_try(
    db: sessionmaker[Session],
) -> None:
    with transaction(db) as session:
        row_id = enqueue(session, messaging.LAUNCH_JOB, "launch.cpu", {"job_id": 1}).id
    dead = CeleryPublisher(_dead_broker_url(), timeout_s=0.5)
    bounds = Bounds(max_attempts=2, backoff_s=60, backoff_max_s=60)

    assert publish_pending(db, dead, bounds=bounds) == 0
    assert publish_pending(db, dead, bounds=bounds) == 0  # within its backoff: not tried
    with db() as session:
        row = session.get(OutboxMessage, row_id)
        assert row.attempts == 1 and row.given_up_dttm is None and row.last_error
        assert row.next_attempt_dttm > utcnow() + timedelta(seconds=50)

    with transaction(db) as session:  # the backoff has passed
        session.execute(
            update(OutboxMessage).values(next_attempt_dttm=utcnow() - timedelta(seconds=1))
        )
    assert publish_pending(db, dead, bounds=bounds) == 0
    with db() as session:
        row = session.get(OutboxMessage, row_id)
        assert row.attempts == 2 and row.given_up_dttm is not None and row.published_dttm is None
        assert pending_count(session) == 0, "a given-up row is not pending work"
    with transaction(db) as session:
        session.execute(update(OutboxMessage).values(next_attempt_dttm=None))
    assert publish_pending(db, dead, bounds=bounds) == 0
    with db() as session:
        assert session.get(OutboxMessage, row_id).attempts == 2, "never tried again"
