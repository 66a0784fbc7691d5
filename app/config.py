"""Settings, read once from the environment (every variable is listed in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app.domain.retry import ThrashGuard
from app.jobfiles import Limits, MiB

DEFAULT_DATA_DIR = Path(os.environ.get("TRAINYARD_HOME", Path.cwd() / "var"))


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def node_lost_after_s() -> float:
    """NODE_LOST_AFTER_S: the silence after which a node is presumed lost. `Settings` holds
    it for the API, `NodeSettings` for a node; app/services/images.py reads it here, from a
    status write that has no `Settings` at hand."""
    return float(_env("NODE_LOST_AFTER_S", "120"))


def retry_thrash_guard() -> ThrashGuard:
    """JOB_RETRY_THRASH_FAILURES endings of one run within JOB_RETRY_THRASH_WINDOW_S stop its
    automatic retries early (app/domain/retry.py; 0 failures: no guard). Read here, as
    `node_lost_after_s`, by the status write that decides a retry (on a worker)."""
    return ThrashGuard(
        failures=max(0, int(_env("JOB_RETRY_THRASH_FAILURES", "4"))),
        window_s=max(0.0, float(_env("JOB_RETRY_THRASH_WINDOW_S", "600"))),
    )


# --- bounds: nothing retries forever, nothing holds a lock forever (issue 10, item 4) -----


@dataclass(frozen=True)
class Bounds:
    """How long one database statement may wait or run on a worker, and how often work on one
    job may fail before the job ends with a clear code instead of being retried forever."""

    lock_timeout_s: float = 10.0  # a worker statement waiting on a row lock gives up
    statement_timeout_s: float = 60.0  # a worker statement running longer is canceled
    idle_in_transaction_timeout_s: float = 120.0  # a stuck worker's open transaction is ended
    max_attempts: int = 5  # launch claims / completion tries of one job
    backoff_s: float = 5.0  # wait after the first failed attempt; doubles per attempt
    backoff_max_s: float = 300.0
    claim_lost_after_s: float = 30.0  # claimed, no launch running, no container: lost

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after the `attempts`-th failed attempt before the next one."""
        if attempts <= 0:
            return timedelta(0)
        return timedelta(seconds=min(self.backoff_max_s, self.backoff_s * 2 ** (attempts - 1)))

    def due(self, attempts: int, last_attempt: datetime | None, now: datetime) -> bool:
        """May the next attempt start now? (A naive time is UTC, as SQLite hands it back.)"""
        if last_attempt is None:
            return True
        if last_attempt.tzinfo is None:
            last_attempt = last_attempt.replace(tzinfo=UTC)
        return now >= last_attempt + self.backoff(attempts)


def load_bounds() -> Bounds:
    return Bounds(
        lock_timeout_s=float(_env("DB_LOCK_TIMEOUT_S", "10")),
        statement_timeout_s=float(_env("DB_STATEMENT_TIMEOUT_S", "60")),
        idle_in_transaction_timeout_s=float(_env("DB_IDLE_IN_TRANSACTION_TIMEOUT_S", "120")),
        max_attempts=max(1, int(_env("RETRY_MAX_ATTEMPTS", "5"))),
        backoff_s=float(_env("RETRY_BACKOFF_S", "5")),
        backoff_max_s=float(_env("RETRY_BACKOFF_MAX_S", "300")),
        claim_lost_after_s=float(_env("CLAIM_LOST_AFTER_S", "30")),
    )


# --- end of bounds ------------------------------------------------------------------------


# --- webhooks (docs/webhooks.md) -----------------------------------------------------------


@dataclass(frozen=True)
class WebhookSettings:
    """Where status changes are sent and how. The status write (API and workers) reads the
    endpoints, the format and the public URL; the workers' delivery reads the secret, the
    timeout and the retry bounds. Set them alike on the API and every worker."""

    urls: tuple[str, ...] = ()  # WEBHOOK_URLS: the deployment's endpoints
    secret: str | None = None  # WEBHOOK_SECRET: the HMAC-SHA256 key (None: unsigned)
    format: str = "json"  # WEBHOOK_FORMAT: "json" or "slack", for WEBHOOK_URLS
    public_url: str = "http://127.0.0.1:8000"  # PUBLIC_URL: the links in each event
    timeout_s: float = 5.0  # one delivery attempt's bound (connect, send, answer)
    senders: int = 1  # a worker process's task threads that may send at once
    # Tries of one delivery, then it is dead-lettered; the wait doubles after each failure.
    retry: Bounds = field(
        default_factory=lambda: Bounds(max_attempts=10, backoff_s=10.0, backoff_max_s=3600.0)
    )


def load_webhook_settings() -> WebhookSettings:
    """WEBHOOK_* and PUBLIC_URL from the environment; a bad value is a ValueError naming it
    (the API and the workers check at start: app/factory.py, workers/context.py)."""
    from app.domain.webhooks import FORMATS, url_problem

    urls = tuple(u for u in os.environ.get("WEBHOOK_URLS", "").replace(",", " ").split() if u)
    for url in urls:
        problem = url_problem(url)
        if problem:
            raise ValueError(f"WEBHOOK_URLS: {problem}")
    kind = _env("WEBHOOK_FORMAT", "json").lower()
    if kind not in FORMATS:
        raise ValueError(f"WEBHOOK_FORMAT must be one of {', '.join(FORMATS)}, got {kind!r}")
    return WebhookSettings(
        urls=urls,
        secret=os.environ.get("WEBHOOK_SECRET") or None,
        format=kind,
        public_url=_env("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
        timeout_s=float(_env("WEBHOOK_TIMEOUT_S", "5")),
        senders=max(1, int(_env("WEBHOOK_SENDERS", "1"))),
        retry=Bounds(
            max_attempts=max(1, int(_env("WEBHOOK_MAX_ATTEMPTS", "10"))),
            backoff_s=float(_env("WEBHOOK_BACKOFF_S", "10")),
            backoff_max_s=float(_env("WEBHOOK_BACKOFF_MAX_S", "3600")),
        ),
    )


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str
    api_token: str | None
    display_tz: str
    output_root: Path
    dataset_root: Path
    default_image: str
    publish_timeout_s: float
    list_count_cache_s: float  # how long a list page's totalElements may be reused
    # What the API accepts and where it may listen (docs/security.md).
    max_body_bytes: int  # a request body larger than this is a 413
    max_params_bytes: int  # a model's params larger than this, as JSON, are a 400
    allow_insecure_no_token: bool  # serve on a non-loopback address without API_TOKEN
    # May a model ask for a network (`network: true`)? Checked by the API at create and by
    # the node at launch (a model created while it was allowed).
    job_network_allowed: bool = False
    bounds: Bounds = field(default_factory=Bounds)
    # A node without a heartbeat this long is "lost" (GET /api/nodes, /metrics); the workers
    # read the same variable to end a lost node's jobs (workers/heartbeat.py).
    node_lost_after_s: float = 120.0
    # How long the read endpoints reuse the live nodes' images (allowedCommands), per process.
    live_images_cache_s: float = 1.0
    # How many list pages an API process keeps until a model or a job changes
    # (app/api/answer_cache.py); 0: none.
    answer_cache_entries: int = 1024
    # Job outputs are hostile input (docs/security.md): the size cap of each kind of job file.
    job_file_limits: Limits = field(default_factory=Limits)
    # GET …/logs?follow=1 (app/api/logstream.py): one stream holds one gunicorn worker thread
    # (a whole sync worker), so it ends after this long (the client resumes with
    # Last-Event-ID); below gunicorn's default --timeout of 30 s so a sync worker is never
    # killed mid-stream.
    log_follow_max_s: float = 25.0
    log_follow_keepalive_s: float = 10.0  # a comment line while nothing new was printed
    log_follow_streams: int = 2  # live streams one API process serves at once; more: 503

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.display_tz)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **overrides)


def load_settings() -> Settings:
    data_dir = DEFAULT_DATA_DIR
    return Settings(
        database_url=_env("DATABASE_URL", f"sqlite:///{data_dir / 'trainyard.db'}"),
        broker_url=_env("BROKER_URL", "redis://127.0.0.1:6379/0"),
        api_token=os.environ.get("API_TOKEN") or None,
        display_tz=_env("DISPLAY_TZ", "Asia/Seoul"),
        output_root=Path(_env("OUTPUT_ROOT", str(data_dir / "outputs"))),
        dataset_root=Path(_env("DATASET_ROOT", str(data_dir / "datasets"))),
        default_image=_env("TRAINER_IMAGE", "trainyard/trainer:latest"),
        publish_timeout_s=float(_env("PUBLISH_TIMEOUT_S", "2")),
        list_count_cache_s=float(_env("LIST_COUNT_CACHE_S", "1")),
        live_images_cache_s=float(_env("LIVE_IMAGES_CACHE_S", "1")),
        answer_cache_entries=max(0, int(_env("ANSWER_CACHE_ENTRIES", "1024"))),
        bounds=load_bounds(),
        job_file_limits=Limits(
            metrics_csv=int(_env("JOB_FILE_MAX_CSV_MB", "2048")) * MiB,
            json=int(_env("JOB_FILE_MAX_JSON_MB", "5")) * MiB,
            split_list=int(_env("JOB_FILE_MAX_SPLIT_LIST_MB", "256")) * MiB,
            results_zip=int(_env("JOB_FILE_MAX_ZIP_MB", "8192")) * MiB,
            job_log=int(_env("JOB_LOG_MAX_MB", "64")) * MiB,
        ),
        log_follow_max_s=float(_env("LOG_FOLLOW_MAX_S", "25")),
        log_follow_keepalive_s=float(_env("LOG_FOLLOW_KEEPALIVE_S", "10")),
        log_follow_streams=max(1, int(_env("LOG_FOLLOW_STREAMS", "2"))),
        max_body_bytes=int(_env("API_MAX_BODY_BYTES", str(1024 * 1024))),
        max_params_bytes=int(_env("API_MAX_PARAMS_BYTES", str(64 * 1024))),
        allow_insecure_no_token=_env("ALLOW_INSECURE_NO_TOKEN", "0") == "1",
        job_network_allowed=_env("JOB_NETWORK_ALLOWED", "0") == "1",
        node_lost_after_s=node_lost_after_s(),
    )
