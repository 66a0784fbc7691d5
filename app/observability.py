"""Logs that carry the model and job they are about, and the numbers Prometheus scrapes.

Logging
    `configure_logging()` installs one stderr handler on the root logger (idempotent).
    `LOG_FORMAT=json` writes one JSON object per line; `text` (the default) a plain line.
    Either way a record carries `model_uuid`, `job_id` and `node` when they are known: bound
    for the current thread/task with `log_context(...)` (the API binds the request's model
    uuid, the worker binds each task's job), or passed with `extra={...}`.

Metrics (`GET /metrics` on the API, see app/api/prom.py)
    Computed at scrape time from PostgreSQL and Redis, never observed in process memory: the
    API runs several gunicorn processes and the jobs move in other processes (the workers), so
    in-process counters would each see a part. The database has every timestamp already.

    trainyard_jobs{status}                   jobs per status_cd (a COUNT ... GROUP BY)
    trainyard_models{status}                 models per derived status_cd
    trainyard_queue_depth{queue}             messages waiting in each Celery queue (LLEN)
    trainyard_job_dispatch_seconds{type}     queued_dttm → started_dttm, every started job
    trainyard_job_completion_seconds{type}   container_ended_dttm → finished_dttm
    trainyard_up{component}                  1 when the database / broker answered this scrape

    The two histograms are cumulative over all rows (bucket counts come from one aggregate
    query), so they only grow, as Prometheus expects: use rate()/histogram_quantile() on them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from sqlalchemy import ColumnElement, Float, case, cast, func, select

from app import messaging
from app.db.models import Job, Model
from app.domain.states import JobStatus, StepState

CONTEXT_FIELDS = ("model_uuid", "job_id", "node")
_context: ContextVar[dict[str, Any] | None] = ContextVar("trainyard_log_context", default=None)


# --- logging ------------------------------------------------------------------------------


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind fields (model_uuid=, job_id=, node=) to every record logged inside the block."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> Any:
    """The un-nested form of log_context (Celery's prerun/postrun signals): returns a token
    for `reset_log_context`."""
    return _context.set({**(_context.get() or {}), **fields})


def reset_log_context(token: Any) -> None:
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound fields (and the process-wide ones) onto each record."""

    def __init__(self, static: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.static = {k: v for k, v in (static or {}).items() if v is not None}

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get() or {}
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, bound.get(name, self.static.get(name)))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int | float) else str(value)
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = " ".join(
            f"{name}={getattr(record, name)}"
            for name in ("model_uuid", "job_id")
            if getattr(record, name, None) is not None
        )
        if not tags:
            return line
        head, sep, rest = line.partition("\n")  # keep a traceback below the tagged line
        return f"{head} [{tags}]{sep}{rest}"


def configure_logging(
    fmt: str | None = None, level: str | None = None, **static: Any
) -> logging.Handler:
    """Install (once) the root handler; later calls only update its static fields."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_trainyard", False):
            for f in handler.filters:
                if isinstance(f, ContextFilter):
                    f.static.update({k: v for k, v in static.items() if v is not None})
            return handler
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "text").lower()
    if fmt not in ("json", "text"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'text', got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler._trainyard = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter(static))
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("LOG_LEVEL") or "INFO").upper())
    return handler


# --- Prometheus -----------------------------------------------------------------------------

DISPATCH_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
COMPLETION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Kombu's Redis transport keeps a queue's prioritised messages in sibling lists.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class TrainyardCollector:
    """A prometheus_client collector: every number is read when Prometheus scrapes."""

    def __init__(self, engine: Any, broker_url: str) -> None:
        self.engine = engine
        self.broker_url = broker_url
        self._redis: Any = None

    def collect(self) -> Iterable[Any]:
        up = GaugeMetricFamily(
            "trainyard_up", "1 when the component answered this scrape", labels=["component"]
        )
        try:
            yield from self._database_metrics()
            up.add_metric(["database"], 1)
        except Exception as exc:
            logging.getLogger(__name__).warning("metrics: database unavailable: %s", exc)
            up.add_metric(["database"], 0)
        try:
            yield self._queue_depths()
            up.add_metric(["broker"], 1)
        except Exception as exc:
            logging.getLogger(__name__).warning("metrics: broker unavailable: %s", exc)
            up.add_metric(["broker"], 0)
        yield up

    # database ---------------------------------------------------------------------------

    def _database_metrics(self) -> list[Any]:
        with self.engine.connect() as conn:
            by_job = _counts(conn, Job.status_cd)
            by_model = _counts(conn, Model.status_cd)
            dispatch = self._histogram(conn, Job.queued_dttm, Job.started_dttm, DISPATCH_BUCKETS)
            completion = self._histogram(
                conn, Job.container_ended_dttm, Job.finished_dttm, COMPLETION_BUCKETS
            )
        jobs = GaugeMetricFamily("trainyard_jobs", "Jobs by status_cd", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], by_job.get(status.value, 0))
        models = GaugeMetricFamily(
            "trainyard_models", "Models by (derived) status_cd", labels=["status"]
        )
        for state in StepState:
            models.add_metric([state.value], by_model.get(state.value, 0))
        return [
            jobs,
            models,
            self._histogram_family(
                "trainyard_job_dispatch_seconds",
                "Seconds from a job being queued to its container starting",
                dispatch,
            ),
            self._histogram_family(
                "trainyard_job_completion_seconds",
                "Seconds from a container ending to its job's final status being written",
                completion,
            ),
        ]

    def _histogram(
        self, conn: Any, start: Any, end: Any, buckets: tuple[float, ...]
    ) -> dict[str, tuple[list[int], int, float]]:
        """{job_type: (cumulative bucket counts, count, sum)} from one aggregate query."""

        seconds: ColumnElement[Any]
        if conn.dialect.name == "postgresql":
            seconds = cast(func.extract("epoch", end - start), Float)
        else:  # SQLite keeps UTC text; julianday() is in days (a double: round off its noise)
            seconds = func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in buckets]
        query = (
            select(Job.job_type, func.count(), func.sum(seconds), *columns)
            .where(start.is_not(None), end.is_not(None))
            .group_by(Job.job_type)
        )
        result: dict[str, tuple[list[int], int, float]] = {}
        for job_type, count, total, *counts in conn.execute(query):
            result[job_type] = ([int(c or 0) for c in counts], int(count), float(total or 0.0))
        return result

    @staticmethod
    def _histogram_family(
        name: str, doc: str, data: dict[str, tuple[list[int], int, float]]
    ) -> Any:
        family = HistogramMetricFamily(name, doc, labels=["type"])
        buckets = DISPATCH_BUCKETS if "dispatch" in name else COMPLETION_BUCKETS
        for job_type in ("TRAIN", "EVAL"):
            counts, count, total = data.get(job_type, ([0] * len(buckets), 0, 0.0))
            points = [(_bound(b), c) for b, c in zip(buckets, counts, strict=True)]
            family.add_metric([job_type], [*points, ("+Inf", count)], total)
        return family

    # broker -----------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.broker_url, socket_connect_timeout=1, socket_timeout=2
            )
        return self._redis

    def queue_names(self) -> list[str]:
        """The shared queues, and every node queue a worker has declared (kombu keeps a
        `_kombu.binding.<queue>` set per declared direct queue, even while it is empty)."""

        names = {
            messaging.QUEUE_CONTROL,
            messaging.QUEUE_METRICS,
            messaging.QUEUE_LAUNCH_CPU,
            messaging.QUEUE_LAUNCH_GPU,
            messaging.QUEUE_WEBHOOKS,
        }
        prefix = "_kombu.binding."
        for key in self._client().scan_iter(match=f"{prefix}node.*", count=500):
            names.add(key.decode()[len(prefix) :])
        return sorted(names)

    def _queue_depths(self) -> Any:
        client = self._client()
        names = self.queue_names()
        pipe = client.pipeline(transaction=False)
        for name in names:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(name + suffix)
        lengths = iter(pipe.execute())
        family = GaugeMetricFamily(
            "trainyard_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        for name in names:
            family.add_metric([name], sum(next(lengths) for _ in _PRIORITY_SUFFIXES))
        return family


def _counts(conn: Any, column: Any) -> dict[str, int]:
    return {
        value: int(n) for value, n in conn.execute(select(column, func.count()).group_by(column))
    }


def _bound(value: float) -> str:
    return floatToGoString(value)
