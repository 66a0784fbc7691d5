"""Start a node: the Celery worker (thread pool) and its supervisor thread, one process.

    trainyard worker            # or: python -m workers.main [celery worker options]
    trainyard worker --check    # could it start? settings, database, broker, runtime

The queues follow from the node's settings: control and metrics work, this node's own queue
(stop, status sync), the CPU launch pool, and the GPU launch pool when NODE_GPUS is set.
Threads, not forked processes: every task is short and waits on Docker or the database, and
the supervisor shares the process.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import signals
from sqlalchemy import select

from app import messaging
from app.config import load_webhook_settings
from app.db.models import Job, Model
from app.observability import bind_log_context, configure_logging, reset_log_context
from workers.celery_app import assert_settings, celery_app
from workers.context import build_context, context, set_context
from workers.drain import DrainWatcher, launch_queues
from workers.supervisor import Supervisor


def node_queues(node: str, has_gpus: bool) -> list[str]:
    queues = [
        messaging.node_queue(node),
        messaging.QUEUE_CONTROL,
        messaging.QUEUE_METRICS,
        messaging.QUEUE_WEBHOOKS,
        messaging.QUEUE_LAUNCH_CPU,
    ]
    if has_gpus:
        queues.append(messaging.QUEUE_LAUNCH_GPU)
    return queues


def _bind_task_log_context(task_id: str, args: Any = None, kwargs: Any = None, **_: Any) -> None:
    """Every log line of a task about a job carries the job id and its model's uuid."""
    job_id = (kwargs or {}).get("job_id")
    if job_id is None:
        return
    model_uuid = None
    try:
        with context().db() as session:
            model_uuid = session.scalar(
                select(Model.uuid).join(Job, Job.model_id == Model.id).where(Job.id == job_id)
            )
    except Exception:  # a log field is never worth failing a task for
        pass
    _task_tokens[task_id] = bind_log_context(
        job_id=job_id, model_uuid=str(model_uuid) if model_uuid else None
    )


def _unbind_task_log_context(task_id: str, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        reset_log_context(token)


_task_tokens: dict[str, Any] = {}


def _start_drain_watcher(ctx: Any, queues: list[str]) -> None:
    @signals.worker_ready.connect(weak=False)
    def _ready(sender: Any = None, **_: Any) -> None:
        DrainWatcher(celery_app, ctx, sender.hostname, launch_queues(queues)).start()


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    load_webhook_settings()  # a bad WEBHOOK_* value stops the start, naming the variable
    ctx = build_context()
    configure_logging(node=ctx.node.node)  # from now on every line names its node
    set_context(ctx)
    signals.task_prerun.connect(_bind_task_log_context, weak=False)
    signals.task_postrun.connect(_unbind_task_log_context, weak=False)
    assert_settings(celery_app)
    supervisor = Supervisor(ctx)
    supervisor.start()
    queues = node_queues(ctx.node.node, bool(ctx.node.gpu_ids))
    _start_drain_watcher(ctx, queues)
    concurrency = os.environ.get("WORKER_CONCURRENCY", "4")
    try:
        # `start`, not `worker_main`: worker_main drops the exit status, so a worker that
        # stopped on an unrecoverable error exited 0 and a process manager that restarts
        # failed services (systemd Restart=on-failure) left it down.
        status = celery_app.start(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={concurrency}",
                f"--hostname={ctx.node.node}@%h",
                f"--queues={','.join(queues)}",
                "--loglevel=INFO",
                # Gossip and mingle talk worker to worker over the broker, and nothing here
                # uses them (no revokes; Flower reads events): fewer connections to lose.
                "--without-gossip",
                "--without-mingle",
                *(argv or []),
            ]
        )
    finally:
        supervisor.stop()
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
