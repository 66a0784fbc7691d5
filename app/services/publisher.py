"""Publishing tasks to the broker. The services know only the `Publisher` protocol.

Every broker call from the API has a bound (docs/deployment.md, "When PostgreSQL or Redis is
down"): each connect and each socket read or write gives up after `timeout_s`
(`PUBLISH_TIMEOUT_S`), nothing is retried, and `request` waits for an answer at most its own
`timeout_s` on top. A frozen or unreachable broker therefore holds an API thread for seconds,
never for the length of the outage.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Protocol

import redis
from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

# Where a Celery Redis result backend (the workers') stores a task's result.
RESULT_KEY_PREFIX = "celery-task-meta-"

# What a broker that is down, frozen or unreachable raises through kombu or redis-py.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    KombuOperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
)


class BrokerUnavailable(Exception):
    """The broker could not be reached, or did not answer within its bound."""


class RemoteTaskFailed(Exception):
    """The task ran and raised; the message is its exception."""


class Publisher(Protocol):
    def publish(self, task_name: str, queue: str, payload: dict[str, Any], message_id: str) -> None:
        """Send one task; raise on failure (the outbox keeps the row for a later try)."""

    def request(self, task_name: str, queue: str, payload: dict[str, Any], timeout_s: float) -> Any:
        """Send one task and wait for its result: TimeoutError when none comes in time,
        BrokerUnavailable when the broker cannot be reached."""


def make_celery_client(broker_url: str, timeout_s: float = 2.0) -> Celery:
    """A Celery app used only to send tasks by name (the workers own the real one). It has no
    result backend: Celery's shares one pub/sub connection, under a lock, among all threads,
    and retries it, so one frozen broker held every waiting thread for the whole freeze."""
    client = Celery("trainyard-api", broker=broker_url, set_as_current=False)
    client.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_connection_timeout=timeout_s,
        broker_connection_retry_on_startup=False,
        broker_transport_options={
            "socket_connect_timeout": timeout_s,
            "socket_timeout": timeout_s,
            "max_retries": 0,
        },
    )
    return client


def make_bounded_redis(broker_url: str, timeout_s: float) -> redis.Redis:
    """A Redis client whose every call ends within `timeout_s`: no retries, no hidden PING."""
    return redis.Redis.from_url(
        broker_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class CeleryPublisher:
    def __init__(self, broker_url: str, timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self.celery = make_celery_client(broker_url, timeout_s)
        self.results = make_bounded_redis(broker_url, timeout_s)

    def publish(self, task_name: str, queue: str, payload: dict[str, Any], message_id: str) -> None:
        # retry=False: a down broker must fail fast; the outbox row is the retry.
        self.celery.send_task(
            task_name, kwargs=payload, queue=queue, task_id=message_id, retry=False
        )

    def request(self, task_name: str, queue: str, payload: dict[str, Any], timeout_s: float) -> Any:
        """Send a task and poll for the result its worker stores (the workers' result backend
        is this Redis). Takes at most `timeout_s` plus two broker bounds (the send, the last
        read); raises TimeoutError when no answer came, BrokerUnavailable when Redis failed."""
        task_id = str(uuid.uuid4())
        key = RESULT_KEY_PREFIX + task_id
        deadline = time.monotonic() + timeout_s
        pause = 0.02
        try:
            self.publish(task_name, queue, payload, task_id)
            while (raw := self.results.get(key)) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer within {timeout_s:g} s")
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.2)
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        # Read once and left to expire (the workers' result_expires): deleting it would be one
        # more broker call on the way out.
        return _result_of(json.loads(raw))

    def ping(self) -> bool:
        try:
            return bool(self.results.ping())
        except BROKER_ERRORS:
            return False


def _result_of(meta: dict[str, Any]) -> Any:
    if meta.get("status") == "SUCCESS":
        return meta.get("result")
    failure = meta.get("result") or {}
    detail = failure.get("exc_message") if isinstance(failure, dict) else failure
    raise RemoteTaskFailed(f"{meta.get('status')}: {detail}")
