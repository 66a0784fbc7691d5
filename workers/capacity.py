"""How much one node may hold, and which waiting job goes next (issue 12, capacity).

A node holds a job from its claim until its container is confirmed removed (its container
phase holds it, app/domain/container_phases.py): a claimed job being launched, a running
container and an ended one not yet removed all count. At most NODE_MAX_JOBS of them, and the
sum of their memory limits (the job's `resources.memory_mb`, else DEFAULT_JOB_MEMORY_MB: what
the container is given) at most NODE_MEMORY_MB. GPU jobs are bounded by their GPU leases as
well (workers/gpus.py).

Race-free: a claim locks its node's `tb_node` row (FOR UPDATE) before counting, in the claim's
transaction, so a second claim on the same node waits for the first to commit and then counts
its job (READ COMMITTED: each statement sees what committed before it). Two launches never
both take the last slot.

Order: jobs launch oldest first (queued time, then id). A claim that has room still yields to
an older waiting job that could take that room now, and sends that job to this node. A newer
job that fits where an older one does not (more memory or GPUs than are free) goes ahead: no
head-of-line blocking, at the cost that a large job can wait while small ones keep coming.
Waiting is not a claim: it counts no launch attempt and never fails the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Bounds
from app.db.models import GpuLease, Job, Node
from app.domain.states import JobStatus
from app.domain.timefmt import utcnow
from app.services.queries import held_by, holds_container
from workers.settings import NodeSettings

# How many of the oldest waiting jobs one look at the queue reads: the yield check and the
# wake-up after a slot frees need only the few that fit, not the whole backlog.
WAITING_SCAN_LIMIT = 500


@dataclass(frozen=True)
class Load:
    """What a node holds now."""

    jobs: int
    memory_mb: int
    gpus_free: int


@dataclass(frozen=True)
class Waiting:
    """A QUEUED job no node holds, as the queue order and the capacity checks see it."""

    job_id: int
    model_id: int
    memory_mb: int
    gpus: int


def job_memory_mb(resources: dict[str, Any] | None, default_mb: int) -> int:
    """The memory limit its container gets (workers/launcher.build_spec): what it is promised."""
    memory = (resources or {}).get("memory_mb")
    return int(memory) if memory else default_mb


def job_gpus(resources: dict[str, Any] | None) -> int:
    return int((resources or {}).get("gpus", 0) or 0)


def lock_node(session: Session, node: str) -> None:
    """Lock this node's heartbeat row for the rest of the transaction; every claim on the node
    takes this lock before it counts. The row is made here if no heartbeat wrote it yet."""
    if session.get(Node, node, with_for_update=True) is not None:
        return
    now = utcnow()
    try:
        with session.begin_nested():
            session.add(Node(name=node, started_dttm=now, last_seen_dttm=now))
    except IntegrityError:  # another process made it meanwhile
        pass
    session.get(Node, node, with_for_update=True, populate_existing=True)


def load_of(session: Session, node: NodeSettings) -> Load:
    resources = session.scalars(
        select(Job.resources).where(held_by(node.node))
    ).all()
    held = set(session.scalars(select(GpuLease.gpu_id).where(GpuLease.node == node.node)))
    return Load(
        jobs=len(resources),
        memory_mb=sum(job_memory_mb(r, node.default_memory_mb) for r in resources),
        gpus_free=len([gpu for gpu in node.gpu_ids if gpu not in held]),
    )


def never_fits(node: NodeSettings, memory_mb: int) -> str | None:
    """Why a job could never run on this node, even empty (it stays QUEUED for another)."""
    if memory_mb > node.memory_mb:
        return f"it asks {memory_mb} MiB; node {node.node} has NODE_MEMORY_MB={node.memory_mb}"
    return None


def no_room(node: NodeSettings, load: Load, memory_mb: int) -> str | None:
    """Why a job of `memory_mb` must wait for a slot on this node now; None when it fits."""
    if load.jobs >= node.max_jobs:
        return f"node {node.node} is full ({load.jobs} of NODE_MAX_JOBS={node.max_jobs} jobs)"
    if load.memory_mb + memory_mb > node.memory_mb:
        return (
            f"node {node.node} has {node.memory_mb - load.memory_mb} of "
            f"NODE_MEMORY_MB={node.memory_mb} MiB free; the job asks {memory_mb}"
        )
    return None


def waiting_jobs(
    session: Session,
    node: NodeSettings,
    bounds: Bounds,
    load: Load,
    before: tuple[datetime, int] | None = None,
    limit: int = 1,
) -> list[Waiting]:
    """The oldest waiting jobs this node could launch now, together, in launch order (at most
    `limit`; only those queued before `before`, a (queued time, id) pair, when given).

    Left out, as the claim would leave them: jobs whose model still has a container (the model's
    previous job not yet removed), jobs in their retry backoff or out of attempts, jobs that
    need more GPUs or memory than this node has free."""
    query = select(
        Job.id,
        Job.model_id,
        Job.resources,
        Job.launch_attempts,
        Job.last_attempt_dttm,
    ).where(Job.status_cd == JobStatus.QUEUED.value, Job.node.is_(None))
    if before is not None:
        query = query.where(tuple_(Job.queued_dttm, Job.id) < tuple_(*before))
    rows = session.execute(
        query.order_by(Job.queued_dttm, Job.id).limit(WAITING_SCAN_LIMIT)
    ).all()
    if not rows:
        return []
    busy_models = set(
        session.scalars(
            select(Job.model_id).where(
                Job.model_id.in_({row.model_id for row in rows}), holds_container()
            )
        )
    )
    now = utcnow()
    jobs, memory, gpus_free = load.jobs, load.memory_mb, load.gpus_free
    chosen: list[Waiting] = []
    for row in rows:
        if len(chosen) >= limit or jobs >= node.max_jobs:
            break
        wanted_memory = job_memory_mb(row.resources, node.default_memory_mb)
        wanted_gpus = job_gpus(row.resources)
        if (
            row.model_id in busy_models
            or row.launch_attempts >= bounds.max_attempts
            or not bounds.due(row.launch_attempts, row.last_attempt_dttm, now)
            or wanted_gpus > gpus_free
            or memory + wanted_memory > node.memory_mb
        ):
            continue
        chosen.append(Waiting(row.id, row.model_id, wanted_memory, wanted_gpus))
        jobs, memory, gpus_free = jobs + 1, memory + wanted_memory, gpus_free - wanted_gpus
    return chosen
