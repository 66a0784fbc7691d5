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
from collections.abc import Mapping
from typing import Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import ClauseElement, Dialect, Executable
from sqlalchemy.orm import Session


def rows(session: Session, statement: Executable, params: Mapping[str, Any]) -> list[Any]:
    """The rows of `statement` with `params`, read on `session`'s connection."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return list(connection.execute(statement, dict(params)).all())
    sql, defaults = _compiled(statement, connection.dialect)
    driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)
    cursor = driver.cursor(row_factory=namedtuple_row)
    try:
        # Binary: the rows' timestamps, JSON and uuids decode faster than from text.
        return cursor.execute(sql, {**defaults, **params}, binary=True).fetchall()
    finally:
        cursor.close()


@functools.cache
def _compiled(statement: Executable, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The statement's SQL and the values it binds itself (its literals), compiled once."""
    compiled = cast(ClauseElement, statement).compile(dialect=dialect)
    return str(compiled), dict(compiled.params)
