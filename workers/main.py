"""Start a node: the Celery worker (thread pool) and its supervisor thread, one process.

    python -m workers.main            # or: trainyard-worker

The queues follow from the node's settings: control and metrics work, this node's own queue
(stop, status sync), the CPU launch pool, and the GPU launch pool when NODE_GPUS is set.
Threads, not forked processes: every task is short and waits on Docker or the database, and
the supervisor shares the process.
"""

from __future__ import annotations

import logging
import os
import sys

from app import messaging
from workers.celery_app import assert_settings, celery_app
from workers.context import build_context, set_context
from workers.supervisor import Supervisor


def node_queues(node: str, has_gpus: bool) -> list[str]:
    queues = [
        messaging.node_queue(node),
        messaging.QUEUE_CONTROL,
        messaging.QUEUE_METRICS,
        messaging.QUEUE_LAUNCH_CPU,
    ]
    if has_gpus:
        queues.append(messaging.QUEUE_LAUNCH_GPU)
    return queues


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx = build_context()
    set_context(ctx)
    assert_settings(celery_app)
    supervisor = Supervisor(ctx)
    supervisor.start()
    queues = node_queues(ctx.node.node, bool(ctx.node.gpu_ids))
    concurrency = os.environ.get("WORKER_CONCURRENCY", "4")
    try:
        celery_app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--hostname={ctx.node.node}@%h",
                f"--queues={','.join(queues)}",
                "--loglevel=INFO",
                *(argv or []),
            ]
        )
    finally:
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
