"""GPU leases: a row per (node, GPU) held by a job, taken in the claim's transaction."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db.models import GpuLease


def take_gpus(
    session: Session, node: str, declared: tuple[int, ...], count: int, job_id: int
) -> list[int] | None:
    """Lease `count` free GPUs of this node to the job, or None when not enough are free.

    The primary key (node, gpu_id) is the real guard: if two launches race, the second
    insert fails and its transaction rolls back, leaving the job QUEUED.
    """
    held = set(session.scalars(select(GpuLease.gpu_id).where(GpuLease.node == node)))
    free = [gpu for gpu in declared if gpu not in held]
    if len(free) < count:
        return None
    chosen = free[:count]
    session.add_all(GpuLease(node=node, gpu_id=gpu, job_id=job_id) for gpu in chosen)
    session.flush()
    return chosen


def release_gpus(session: Session, job_id: int) -> None:
    session.execute(delete(GpuLease).where(GpuLease.job_id == job_id))


def leases(session: Session, node: str) -> dict[int, int]:
    """gpu id → job id, for one node."""
    rows = session.execute(select(GpuLease.gpu_id, GpuLease.job_id).where(GpuLease.node == node))
    return {gpu: job for gpu, job in rows}
