"""A stand-in for a training node during the API bench: answers `trainyard.sync_job` on the
bench nodes' queues at once, without Docker, and writes the nodes' heartbeats (as a real
node's supervisor does) so the API asks them instead of reporting them silent.

The API's status sync waits (up to a few seconds) for the owning node's answer; with no node
listening, every status call on a model with a live job would just measure that timeout.
Started and stopped by `bench.api_bench`; by hand:

    BENCH_BROKER_URL=redis://127.0.0.1:6379/14 python -m celery -A bench.fake_node worker \
        -Q node.bench-node-1,node.bench-node-2 --pool threads -c 4
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import psycopg
from celery import Celery, signals

from app import messaging

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")

app = Celery("trainyard-bench-fake-node", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=300,
    worker_prefetch_multiplier=4,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name=messaging.SYNC_JOB)
def sync_job(job_id: int) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "node": socket.gethostname(),
        "outcome": "running",
        "verdict": None,
        "bench": "fake node",
    }


BENCH_NODES = ("bench-node-1", "bench-node-2")


def _beat_forever(database_url: str) -> None:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    while True:
        with psycopg.connect(url, autocommit=True) as conn:
            for node in BENCH_NODES:
                conn.execute(
                    "insert into tb_node (name, started_dttm, last_seen_dttm)"
                    " values (%s, now(), now())"
                    " on conflict (name) do update set last_seen_dttm = now()",
                    (node,),
                )
        time.sleep(5)


@signals.worker_ready.connect
def _start_heartbeats(**_: Any) -> None:
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        threading.Thread(target=_beat_forever, args=(database_url,), daemon=True).start()
