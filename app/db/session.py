"""Engine and session factory. One engine per process; forked workers dispose theirs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.config import Bounds

# The API's connect bound (libpq `connect_timeout`, whole seconds): a PostgreSQL host that
# drops packets makes a request a 503 after this long instead of holding its thread.
API_CONNECT_TIMEOUT_S = 5

#: A key of a session's `info`, true for the read engine's sessions: each statement commits
#: alone there, so it reads the same on any pooled connection as on the session's own.
AUTOCOMMIT_READS = "trainyard.autocommit_reads"


def make_engine(url: str, connect_timeout_s: int | None = None, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("json_deserializer", json_loads)
    if connect_timeout_s is not None:
        connect_args = kwargs.get("connect_args", {})
        kwargs["connect_args"] = {**connect_args, "connect_timeout": connect_timeout_s}
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_worker_engine(url: str, bounds: Bounds) -> Engine:
    """The workers' engine: every session gives up waiting for a lock after `lock_timeout`,
    cancels a statement after `statement_timeout`, and PostgreSQL ends a transaction left
    idle (a thread stuck between two statements) after `idle_in_transaction_session_timeout`,
    so no worker waits on, or holds, a row lock forever. Set at connect time (libpq
    `options`), hence on every pooled connection without a round trip. The API keeps its own."""
    if url.startswith("sqlite"):
        return make_engine(url)
    limits = {
        "lock_timeout": bounds.lock_timeout_s,
        "statement_timeout": bounds.statement_timeout_s,
        "idle_in_transaction_session_timeout": bounds.idle_in_transaction_timeout_s,
    }
    options = " ".join(f"-c {name}={max(1, round(s * 1000))}" for name, s in limits.items() if s)
    return make_engine(url, connect_args={"options": options})


def make_read_engine(url: str, connect_timeout_s: int | None = None) -> Engine:
    """For the API's reads: each statement commits on its own (no BEGIN/ROLLBACK round trips)
    and no ping before each checkout — a list page is a few milliseconds, and those were a
    third of them. Never used for writes: the status-write path needs its transaction."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    connect_args = {} if connect_timeout_s is None else {"connect_timeout": connect_timeout_s}
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        # No transaction is ever open on them, so nothing to roll back when one is returned.
        pool_reset_on_return=None,
        pool_size=10,
        max_overflow=20,
        connect_args=connect_args,
        json_deserializer=json_loads,
    )


# A run of 16 digits: a number orjson might read otherwise than `json` does (it reads an
# integer past 64 bits as a float; a float this long may round either way).
_LONG_NUMBER = re.compile(rb"[0-9]{16}")


def json_loads(data: str | bytes) -> Any:
    """The JSON columns' reader on PostgreSQL (SQLAlchemy's `json_deserializer`: it hands it
    to psycopg for the engine's connections, so the driver's cursor uses it too): orjson,
    three times faster than `json` (the JSON columns were a tenth of a detail's time), with
    `json`'s answer wherever orjson's could differ: long numbers, and what orjson refuses (a
    lone surrogate escape, a number out of a double's range)."""
    if isinstance(data, str):  # psycopg hands bytes; its signature allows text
        data = data.encode()
    if _LONG_NUMBER.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let the sqlite3 driver stop issuing its own BEGIN, so ours (IMMEDIATE) is used.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        # SQLite has no SELECT … FOR UPDATE: taking the write lock at BEGIN serialises
        # writers the way the row lock does on PostgreSQL.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_session_factory(
    engine: Engine, info: dict[str, object] | None = None
) -> sessionmaker[Session]:
    """`info`: what every session's `info` starts with (shared objects, not copies)."""
    return sessionmaker(engine, expire_on_commit=False, info=info)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
