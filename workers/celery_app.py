"""The one Celery app of the workers, and every setting it runs with.

Why these Redis settings (training runs for hours, but no task here does):
- No task waits for a container. Launch, stop, sync and completion are short; a supervisor
  thread watches containers. So a long visibility timeout is never needed to cover a task.
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after its
  task finished, so a worker killed mid-task loses nothing; the redelivered task re-reads the
  rows and does nothing twice (launch is idempotent by container name).
- `visibility_timeout` 300 s: how long Redis waits before handing an unacknowledged message to
  another worker. It must exceed the longest task (a launch: seconds; bounded by the Docker
  client timeout of 120 s), and bounds how late a message held by a dead worker reappears.
- `worker_prefetch_multiplier` 1: a worker reserves one message at a time, so a busy node does
  not sit on launches that an idle node could start now.
- Connection loss: retry forever at start and while running (`broker_connection_retry*`).
  `worker_cancel_long_running_tasks_on_connection_loss` is on (off is deprecated), but the thread
  pool cannot cancel a running thread: Celery logs "Failed to cancel" and the task runs to its
  end. That is safe because every task re-reads its rows under a lock and does nothing twice.
- The broker transport is `RedisTransport` below: kombu's Redis transport with one fix that
  keeps a worker alive when Redis goes away while it runs tasks (see the class).
- Bounded shutdown: `worker_soft_shutdown_timeout` lets running tasks finish for up to 10 s on
  SIGTERM before the cold shutdown returns their messages.
- JSON only, explicit task names, named queues; results (only the status sync waits for one)
  expire after 5 minutes.

`assert_settings()` runs at worker start and refuses to run with anything else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery, signals
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from app import messaging
from app.config import load_settings

VISIBILITY_TIMEOUT_S = 300

REQUIRED_SETTINGS: dict[str, Any] = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry": True,
    "broker_connection_retry_on_startup": True,
    "broker_connection_max_retries": None,
    "worker_cancel_long_running_tasks_on_connection_loss": True,
    "worker_soft_shutdown_timeout": 10.0,
    "task_default_queue": messaging.QUEUE_CONTROL,
}


class _RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, except that a channel whose transport was already closed
    cannot connect: that is a connection error, not an AttributeError.

    Why (Celery 5.7.0, kombu 5.7.0; tests/workers/test_broker_lost.py): when the broker
    connection drops, the consumer first `collect()`s the connection, then closes it
    (`Consumer.on_connection_error_after_connected`). With Redis gone, the channel's first
    close fails half-way on the dead socket (its pending BRPOP read) and stays open; `collect`
    then detaches the transport (`client = None`); the second close reaches the step that
    returns unacknowledged messages to their queue, builds a Redis client from the detached
    transport, and fails with `'NoneType' object has no attribute 'hostname'`. That error is
    not a connection error, so it escapes `ignore_errors`: "Unrecoverable error", and the
    worker stops. There are unacknowledged messages exactly when tasks are running
    (`task_acks_late`), which is why an idle worker survived the same fault.

    Raised as a connection error, it is what every caller on that path already ignores: the
    close completes, the consumer reconnects, running tasks finish. Their messages are not put
    back (Redis is away; `visibility_timeout` returns them if it kept them, the sweep
    re-publishes jobs whose messages it lost) and nothing runs twice (see above).
    """

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was already closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class RedisTransport(kombu_redis.Transport):
    Channel = _RedisChannel


#: The URL schemes kombu serves with its Redis transport (`kombu.transport.TRANSPORT_ALIASES`).
REDIS_SCHEMES = ("redis", "rediss")
_TRANSPORT = f"{__name__}:RedisTransport"

# kombu picks a transport by the broker URL's scheme: redis:// and rediss:// get the class
# above in every process that imports this module (worker, API publisher, Flower). Not the
# `broker_transport` setting: that renames the URL's scheme, and Flower's queue view, which
# reads the scheme, then answers "'redis' broker is not supported".
for _scheme in REDIS_SCHEMES:
    TRANSPORT_ALIASES[_scheme] = _TRANSPORT


def make_celery(broker_url: str | None = None) -> Celery:
    url = broker_url or load_settings().broker_url
    celery = Celery("trainyard", broker=url, backend=url, include=["workers.tasks"])
    celery.conf.update(
        REQUIRED_SETTINGS,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
            "retry_on_timeout": True,
            "health_check_interval": 25,
        },
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        result_expires=300,
        task_queues=[
            Queue(messaging.QUEUE_CONTROL),
            Queue(messaging.QUEUE_METRICS),
            Queue(messaging.QUEUE_LAUNCH_CPU),
            Queue(messaging.QUEUE_LAUNCH_GPU),
            Queue(messaging.QUEUE_WEBHOOKS),
        ],
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        broker_pool_limit=10,
    )
    return celery


def assert_settings(celery: Celery) -> None:
    """Refuse to start a worker whose settings drifted from the ones argued for above."""
    wrong = {
        key: celery.conf.get(key)
        for key, expected in REQUIRED_SETTINGS.items()
        if celery.conf.get(key) != expected
    }
    options = celery.conf.broker_transport_options or {}
    if options.get("visibility_timeout") != VISIBILITY_TIMEOUT_S:
        wrong["broker_transport_options.visibility_timeout"] = options.get("visibility_timeout")
    scheme = urlsplit(str(celery.conf.broker_url or "")).scheme
    if scheme in REDIS_SCHEMES and TRANSPORT_ALIASES.get(scheme) != _TRANSPORT:
        wrong["kombu transport for " + scheme] = TRANSPORT_ALIASES.get(scheme)
    if wrong:
        raise RuntimeError(f"worker settings differ from workers/celery_app.py: {wrong}")


celery_app = make_celery()


@signals.worker_init.connect
def _check_settings_at_start(sender: Any = None, **_: Any) -> None:
    assert_settings(celery_app)


@signals.worker_process_init.connect
def _fresh_engine_in_child(**_: Any) -> None:
    # A forked pool child must not reuse the parent's database connections.
    from workers.context import dispose_engine

    dispose_engine()
