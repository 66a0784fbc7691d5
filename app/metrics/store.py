"""The metric tables: delete, write (COPY on PostgreSQL, executemany on SQLite) and read rows,
and the series row that names each split's slots."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, NamedTuple, cast

import psycopg
from sqlalchemy import Engine, Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from app.db.models import (
    METRIC_SLOTS,
    MetricSeries,
    TestMetric,
    TrainMetric,
    ValidationMetric,
)
from app.metrics.csvfile import Header, Row, slot_name
from app.metrics.source import Source

SPLITS = ("train", "val", "test")
_TABLES: dict[str, Table] = {
    "train": TrainMetric.__table__,  # type: ignore[dict-item]
    "val": ValidationMetric.__table__,  # type: ignore[dict-item]
    "test": TestMetric.__table__,  # type: ignore[dict-item]
}
_BATCH = 10_000  # rows per COPY write / executemany call


class StoredRow(NamedTuple):  # a NamedTuple: a million of them build 7x faster than frozen
    epoch: int
    step: int
    job_id: int
    values: tuple[float | None, ...]


def table_of(split: str) -> Table:
    return _TABLES[split]


def psycopg_connection(session: Session) -> psycopg.Connection[Any] | None:
    """The session's own psycopg connection (same transaction), or None on other drivers."""
    driver = session.connection().connection.driver_connection
    return driver if isinstance(driver, psycopg.Connection) else None


def delete_rows(session: Session, split: str, model_id: int, job_id: int) -> None:
    """Train and val rows belong to the model's one curve; test rows to one EVAL job each."""
    table = table_of(split)
    condition = table.c.model_id == model_id
    if split == "test":
        condition &= table.c.job_id == job_id
    session.execute(delete(table).where(condition))


def write_rows(
    session: Session, split: str, header: Header, rows: Iterable[Row], model_id: int, job_id: int
) -> int:
    """Append parsed rows; returns how many. The caller's transaction makes it all or nothing."""
    count = len(header.metric_names)
    columns = ["model_id", "job_id", "epoch", "step", *_value_columns(count)]
    conn = psycopg_connection(session)
    batches = _batches(iter(rows))
    written = 0
    if conn is not None:
        statement = f"COPY {table_of(split).name} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
        prefix = f"{model_id},{job_id},"
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            for batch in batches:
                copy.write("".join([_csv_line(prefix, row) for row in batch]))
                written += len(batch)
        return written
    # SQLite, the embedded default (its driver takes qmark parameters).
    placeholders = ", ".join("?" for _ in columns)
    statement = f"INSERT INTO {table_of(split).name} ({', '.join(columns)}) VALUES ({placeholders})"
    connection = session.connection()
    for batch in batches:
        connection.exec_driver_sql(statement, [_sqlite_params(model_id, job_id, r) for r in batch])
        written += len(batch)
    return written


def read_rows(
    session: Session, split: str, model_id: int, metric_count: int, job_id: int | None = None
) -> list[StoredRow]:
    """A split's rows in (epoch, step) order (test: by job first), values as floats.

    A plain DB-API cursor: SQLAlchemy's per-row result processing made a million-row read
    several times slower. The ids are integers from our own rows, so they go in literally."""
    slots = [slot_name(i) for i in range(min(metric_count, METRIC_SLOTS))]
    overflow = max(0, metric_count - METRIC_SLOTS)
    columns = ["epoch", "step", "job_id", *slots, *(["extra"] if overflow else [])]
    where = f"model_id = {int(model_id)}"
    if job_id is not None:
        where += f" AND job_id = {int(job_id)}"
    order = "job_id, epoch, step" if split == "test" else "epoch, step"
    sql = f"SELECT {', '.join(columns)} FROM {table_of(split).name} WHERE {where} ORDER BY {order}"
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql)
        records = cursor.fetchall()
    finally:
        cursor.close()
    sqlite = session.get_bind().dialect.name == "sqlite"
    end = 3 + len(slots)
    out: list[StoredRow] = []
    for record in records:
        values = record[3:end]
        if sqlite:
            values = tuple(_decode(v) for v in values)
        if overflow:
            extra = record[-1] or []
            if isinstance(extra, str):
                extra = json.loads(extra)
            values = (*values, *(_decode(v) for v in (list(extra) + [None] * overflow)[:overflow]))
        out.append(StoredRow(record[0], record[1], record[2], values))
    return out


def count_rows(session: Session, split: str, model_id: int, job_id: int | None = None) -> int:
    table = table_of(split)
    query = select(func.count()).select_from(table).where(table.c.model_id == model_id)
    if job_id is not None:
        query = query.where(table.c.job_id == job_id)
    return int(session.scalar(query) or 0)


def has_rows(session: Session, split: str, model_id: int) -> bool:
    table = table_of(split)
    found = session.execute(select(table.c.epoch).where(table.c.model_id == model_id).limit(1))
    return found.first() is not None


def write_series(
    session: Session,
    split: str,
    model_id: int,
    job_id: int,
    header: Header,
    row_count: int,
    source: Source | None = None,
) -> MetricSeries:
    """Replace the split's series row (per job for test); a new generation drops any cache."""
    scope = [MetricSeries.model_id == model_id, MetricSeries.split == split]
    if split == "test":
        scope.append(MetricSeries.job_id == job_id)
    last = session.scalar(select(func.max(MetricSeries.generation)).where(*scope)) or 0
    session.execute(delete(MetricSeries).where(*scope))
    series = MetricSeries(
        model_id=model_id,
        split=split,
        job_id=job_id,
        metric_names=list(header.metric_names),
        has_step=header.has_step,
        row_count=row_count,
        generation=last + 1,
        summary=None,
    )
    _set_source(series, source)
    session.add(series)
    session.flush()
    return series


def grow_series(
    session: Session,
    series: MetricSeries,
    added: int,
    summary: dict[str, Any] | None,
    source: Source | None,
) -> None:
    series.row_count += added
    series.generation += 1
    series.summary = summary
    _set_source(series, source)
    session.flush()


def series_source(series: MetricSeries) -> Source | None:
    if series.source_bytes is None or series.source_lines is None or not series.source_digest:
        return None
    return Source(series.source_bytes, series.source_lines, series.source_digest)


def _set_source(series: MetricSeries, source: Source | None) -> None:
    series.source_bytes = source.bytes if source else None
    series.source_lines = source.lines if source else None
    series.source_digest = source.digest if source else None


def find_series(session: Session, model_id: int, split: str) -> MetricSeries | None:
    """The train or val series row (there is at most one per model and split)."""
    return session.scalars(
        select(MetricSeries)
        .where(MetricSeries.model_id == model_id, MetricSeries.split == split)
        .order_by(MetricSeries.job_id.desc())
        .limit(1)
    ).one_or_none()


def all_series(session: Session, model_id: int) -> list[MetricSeries]:
    """Every series row of the model (train, val and each test), oldest job first."""
    return list(session.scalars(_ALL_SERIES, {"model_id": model_id}))


# Built once (a model's detail reads it on every request), the model bound at execution.
_ALL_SERIES = (
    select(MetricSeries)
    .where(MetricSeries.model_id == bindparam("model_id"))
    .order_by(MetricSeries.job_id)
)


def test_series(session: Session, model_id: int) -> list[MetricSeries]:
    return list(
        session.scalars(
            select(MetricSeries)
            .where(MetricSeries.model_id == model_id, MetricSeries.split == "test")
            .order_by(MetricSeries.job_id)
        )
    )


def cache_summary(session: Session, series: MetricSeries, summary: dict[str, Any]) -> None:
    """Keep a computed summary for the series' generation, best effort and never blocking.

    A separate short transaction, so a read request needs no commit: it writes only if the
    row is unlocked (no ingest under way) and still at the generation the summary came from.
    SQLite is skipped: its writer lock would make a reader wait.
    """
    bind = session.get_bind()
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql":
        return
    key = (series.model_id, series.split, series.job_id)
    row = cast(Table, MetricSeries.__table__)
    free = (
        select(row.c.model_id)
        .where(row.c.model_id == key[0], row.c.split == key[1], row.c.job_id == key[2])
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    with bind.connect() as conn, conn.begin():
        conn.execute(
            update(row)
            .where(row.c.model_id == free, row.c.split == key[1], row.c.job_id == key[2])
            .where(row.c.generation == series.generation)
            .values(summary=summary)
        )


def _value_columns(count: int) -> list[str]:
    columns = [slot_name(i) for i in range(min(count, METRIC_SLOTS))]
    return [*columns, "extra"] if count > METRIC_SLOTS else columns


def _batches(rows: Iterator[Row]) -> Iterator[list[Row]]:
    while batch := list(islice(rows, _BATCH)):
        yield batch


def _csv_line(prefix: str, row: Row) -> str:
    """One COPY CSV line: repr() round-trips every double, and PostgreSQL reads its nan/inf."""
    values = row.values
    cells = ["" if v is None else repr(v) for v in values[:METRIC_SLOTS]]
    if len(values) > METRIC_SLOTS:
        cells.append(
            '"{' + ",".join("NULL" if v is None else repr(v) for v in values[METRIC_SLOTS:]) + '}"'
        )
    return f"{prefix}{row.epoch},{row.step}{',' if cells else ''}{','.join(cells)}\n"


def _sqlite_params(model_id: int, job_id: int, row: Row) -> tuple[Any, ...]:
    values = row.values
    params: list[Any] = [model_id, job_id, row.epoch, row.step]
    params += [_sqlite_value(v) for v in values[:METRIC_SLOTS]]
    if len(values) > METRIC_SLOTS:
        params.append(json.dumps(list(values[METRIC_SLOTS:])))  # json keeps NaN as NaN
    return tuple(params)


def _sqlite_value(value: float | None) -> float | str | None:
    # SQLite stores a NaN REAL as NULL; the text 'NaN' survives in a REAL column instead.
    return "NaN" if value is not None and math.isnan(value) else value


def _decode(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)  # float('NaN') for SQLite's text marker; floats pass through
