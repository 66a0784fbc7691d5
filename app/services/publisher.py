"""Publishing tasks to the broker. The services know only the `Publisher` protocol."""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery


class Publisher(Protocol):
    def publish(self, task_name: str, queue: str, payload: dict[str, Any], message_id: str) -> None:
        """Send one task; raise on failure (the outbox keeps the row for a later try)."""

    def request(self, task_name: str, queue: str, payload: dict[str, Any], timeout_s: float) -> Any:
        """Send one task and wait for its result (TimeoutError when none comes in time)."""


def make_celery_client(
    broker_url: str, timeout_s: float = 2.0, with_results: bool = False
) -> Celery:
    """A Celery app used only to send tasks by name (the workers own the real one).

    Only the status sync waits for an answer, so only its client has a result backend: a
    backend makes every send subscribe for the result, which retries while Redis is down.
    """
    backend = broker_url if with_results else None
    client = Celery("trainyard-api", broker=broker_url, backend=backend, set_as_current=False)
    client.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=300,
        broker_connection_timeout=timeout_s,
        broker_connection_retry_on_startup=False,
        broker_transport_options={
            "socket_connect_timeout": timeout_s,
            "socket_timeout": timeout_s,
            "max_retries": 0,
        },
    )
    return client


class CeleryPublisher:
    def __init__(self, broker_url: str, timeout_s: float = 2.0) -> None:
        self.celery = make_celery_client(broker_url, timeout_s)
        self.rpc = make_celery_client(broker_url, timeout_s, with_results=True)

    def publish(self, task_name: str, queue: str, payload: dict[str, Any], message_id: str) -> None:
        # retry=False: a down broker must fail fast; the outbox row is the retry.
        self.celery.send_task(
            task_name, kwargs=payload, queue=queue, task_id=message_id, retry=False
        )

    def request(self, task_name: str, queue: str, payload: dict[str, Any], timeout_s: float) -> Any:
        """Send a task and wait for its result; raises TimeoutError when none comes in time."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        result = self.rpc.send_task(task_name, kwargs=payload, queue=queue, retry=False)
        try:
            return result.get(timeout=timeout_s, propagate=True)
        except CeleryTimeout:
            raise TimeoutError(f"no answer within {timeout_s:g} s") from None
        finally:
            result.forget()

    def ping(self) -> bool:
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=0, timeout=2)
            return True
        except Exception:
            return False
