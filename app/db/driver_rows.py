"""A prebuilt Core statement run on the driver's own cursor, for the hottest reads.

SQLAlchemy's execute path (binding, result metadata, row processing) cost more than the
statement itself on a model's detail: a 57-column row took ~0.4 ms through it and ~0.17 ms
through psycopg directly. The statement is still written with SQLAlchemy and compiled once; on
PostgreSQL its rows come back as named tuples read by the same names, with the same values (the
read answers' golden test compares them byte for byte). Only for statements whose parameters
are plain values (no expanding IN lists) and whose columns psycopg loads as SQLAlchemy would
(no custom result types). Elsewhere (SQLite) the statement runs through SQLAlchemy as usual.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from psycopg.rows import RowMaker, namedtuple_row
from sqlalchemy import ClauseElement, Dialect, Engine, Executable
from sqlalchemy.orm import Session

from app.db.session import AUTOCOMMIT_READS


def rows(session: Session, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
    """The rows of `statement` with `params`, read in `session`: on its connection, or, in a
    session of statements that each commit alone (`AUTOCOMMIT_READS`) that holds none yet, on
    a pooled one for just this statement — the same rows, without the Session's connection
    bookkeeping (a sixth of a detail's time), and never two connections held at once."""
    engine = cast(Engine, session.get_bind())
    if engine.dialect.name != "postgresql":
        return list(session.connection().execute(statement, dict(params)).all())
    if session.info.get(AUTOCOMMIT_READS) and not session.in_transaction():
        with pooled_driver_connection(engine) as driver:
            return rows_on(driver, statement, params, engine.dialect)
    connection = session.connection().connection.driver_connection
    return rows_on(cast(psycopg.Connection[Any], connection), statement, params, engine.dialect)


def rows_on(
    driver: psycopg.Connection[Any],
    statement: Executable,
    params: Mapping[str, Any],
    dialect: Dialect,
) -> list[Any]:
    """The rows of `statement` with `params` on the driver's connection `driver` (PostgreSQL),
    the statement compiled once for `dialect`."""
    prepared = _compiled(statement, dialect)
    cursor = driver.cursor(row_factory=prepared.row_maker)
    try:
        # Binary: the rows' timestamps, JSON and uuids decode faster than from text.
        return cursor.execute(prepared.sql, {**prepared.defaults, **params}, binary=True).fetchall()
    finally:
        cursor.close()


@contextmanager
def pooled_driver_connection(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection of `engine`, as the driver's own, for statements that commit alone.
    One that failed leaves the pool, and when the server closed it (a restart) so do the idle
    ones, which that closed too: as SQLAlchemy does when it meets a disconnect, so a restart
    costs the next request a 503, not one per pooled connection. The error goes on to the
    caller."""
    connection = engine.raw_connection()
    driver = cast(psycopg.Connection[Any], connection.driver_connection)
    try:
        yield driver
    except (psycopg.OperationalError, psycopg.InterfaceError):
        connection.invalidate()
        if driver.closed:
            engine.pool.dispose()
        raise
    finally:
        connection.close()


class _Prepared:
    """A statement's SQL, the values it binds itself (its literals) and, once it has run,
    the named tuple its rows are read into: psycopg's `namedtuple_row` works the names out
    of each result again (a tenth of a detail's driver time), though a statement's never
    change."""

    def __init__(self, sql: str, defaults: dict[str, Any]) -> None:
        self.sql = sql
        self.defaults = defaults
        self._make_row: RowMaker[Any] | None = None

    def row_maker(self, cursor: psycopg.Cursor[Any]) -> RowMaker[Any]:
        if self._make_row is None:
            self._make_row = namedtuple_row(cursor)
        return self._make_row


@functools.cache
def _compiled(statement: Executable, dialect: Dialect) -> _Prepared:
    compiled = cast(ClauseElement, statement).compile(dialect=dialect)
    return _Prepared(str(compiled), dict(compiled.params))
