"""Node heartbeats, and what happens to the jobs of a node that went silent.

Each node writes its row every SUPERVISE_INTERVAL_S from a thread of its own, so a busy
supervisor (many containers to inspect, a slow database lock) never makes a healthy node look
silent. The row carries the images the node can run (the API refuses an image no live node
has, app/services/images.py). The sweep presumes a node
lost after NODE_LOST_AFTER_S without a beat and ends its unfinished jobs by their outputs
(SPEC §5, as for a missing container), so nothing stays RUNNING forever. The containers are
not confirmed gone, so the model starts no new container until that node comes back and its
startup reconcile stops and removes the old one: a lost node never leads to two live
containers for one model.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from app.db.models import Node
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.services.outbox import publish_pending
from workers import container_writes
from workers.context import WorkerContext
from workers.periodic import Periodic
from workers.requeue import republish_queued

log = logging.getLogger(__name__)


def beat(ctx: WorkerContext, started: bool = False) -> None:
    now = utcnow()
    listed, images = _images(ctx)
    with transaction(ctx.db) as session:
        node = session.get(Node, ctx.node.node)
        if node is None:
            node = Node(name=ctx.node.node, started_dttm=now, last_seen_dttm=now)
            session.add(node)
        if started:
            node.started_dttm = now
        node.last_seen_dttm = now
        node.gpu_ids = list(ctx.node.gpu_ids)
        node.runtime = type(ctx.runtime).__name__
        node.max_jobs = ctx.node.max_jobs
        node.memory_mb = ctx.node.memory_mb
        node.drain_flag_file = ctx.node.drain_file.exists()  # shown by the API (workers/drain.py)
        if listed:
            node.images = images


def _images(ctx: WorkerContext) -> tuple[bool, list[str] | None]:
    """(listed, the runtime's images), asked before the transaction (no row lock is held
    while the engine answers). An engine that does not answer now leaves the last list in
    place (listed False): the beat itself must not fail for it."""
    try:
        return True, ctx.runtime.images()
    except Exception as exc:
        log.warning("could not list this node's images: %s", exc)
        return False, None


class Heartbeat(Periodic):
    """The node's heartbeat thread: it beats and does nothing else (the first beat is the
    supervisor's own, at its start)."""

    def __init__(self, ctx: WorkerContext) -> None:
        interval = ctx.node.supervise_interval_s
        super().__init__("trainyard-heartbeat", lambda: beat(ctx), interval, wait_first=True)
        self.ctx = ctx


def presume_gone_nodes_containers_gone(ctx: WorkerContext) -> int:
    """NODE_GONE_AFTER_S (0: off): a node silent this long is presumed gone for good, its
    machine and containers with it, so the ended jobs' containers it never confirmed removed
    count as gone and their models' next attempts (a retry, a resume) may start elsewhere.
    Should the node come back after all, its startup reconcile stops and removes those
    containers as orphans (no live job of it wants them). The price: a node silent this long
    whose engine still runs a container may briefly overlap with the new attempt, so choose
    it well above NODE_LOST_AFTER_S (docs/workers.md, "Automatic retry")."""
    gone_after = ctx.node.node_gone_after_s
    if gone_after <= 0:
        return 0
    cutoff = utcnow() - timedelta(seconds=max(gone_after, ctx.node.node_lost_after_s))
    with transaction(ctx.db) as session:
        gone = set(session.scalars(select(Node.name).where(Node.last_seen_dttm < cutoff)))
        jobs = container_writes.presume_gone(session, gone) if gone else []
        woken = {job.model_id for job in jobs}
        for job in jobs:
            log.warning("node %s is presumed gone: job %s's container counts as gone",
                        job.node, job.id)  # fmt: skip
    for model_id in sorted(woken):
        republish_queued(ctx, model_id=model_id)
    return len(jobs)


def end_jobs_of_lost_nodes(ctx: WorkerContext) -> int:
    """Jobs claimed by silent nodes, whose end nobody recorded, are judged by their outputs."""
    cutoff = utcnow() - timedelta(seconds=ctx.node.node_lost_after_s)
    with transaction(ctx.db) as session:
        lost = set(session.scalars(select(Node.name).where(Node.last_seen_dttm < cutoff)))
        if not lost:
            return 0
        note = f"sent no heartbeat since {cutoff:%H:%M:%S}"
        jobs, outbox_ids = container_writes.record_nodes_lost(session, lost, note)
        for job in jobs:
            log.warning("node %s is silent: judging job %s by its outputs", job.node, job.id)
    publish_pending(ctx.db, ctx.publisher, only_ids=outbox_ids)
    return len(jobs)
