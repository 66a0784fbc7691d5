"""The cluster as the API, the dashboard and /metrics see it: nodes, their GPUs, the jobs they
hold, and drain (issue 14, item 4).

A node is what its heartbeat row says (tb_node, written by workers/heartbeat.py): alive while
it beat within NODE_LOST_AFTER_S, else lost (the sweep then ends its jobs). A GPU is held by
the job of its lease (tb_gpu_lease); a node holds a job from its claim until its container is
confirmed removed, as the capacity checks count it (workers/capacity.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import GpuLease, Job, Model, Node
from app.domain.timefmt import as_utc, utcnow
from app.services.queries import holds_container

#: Longest node name accepted in a path (tb_node.name is String(128)).
MAX_NODE_NAME = 128


class NodeNotFound(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no node named {name!r} has sent a heartbeat")
        self.name = name


@dataclass(frozen=True)
class HeldJob:
    """A job a node holds: claimed by it, its container not yet confirmed removed."""

    job_id: int
    model_uuid: uuid.UUID
    model_no: str
    model_ver: str
    job_type: str
    attempt: int
    status_cd: str
    gpu_ids: list[int]
    claimed_dttm: datetime | None
    started_dttm: datetime | None
    container_ended_dttm: datetime | None

    @property
    def container_running(self) -> bool:
        return self.started_dttm is not None and self.container_ended_dttm is None


@dataclass(frozen=True)
class Gpu:
    gpu_id: int
    job_id: int | None  # the lease holder; None: free
    job: HeldJob | None  # that job, while its node holds it


@dataclass(frozen=True)
class NodeView:
    row: Node
    alive: bool
    heartbeat_age_s: float
    gpus: list[Gpu]
    jobs: list[HeldJob]

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def draining(self) -> bool:
        return self.row.drain_dttm is not None or bool(self.row.drain_flag_file)

    @property
    def gpus_leased(self) -> int:
        return sum(1 for gpu in self.gpus if gpu.job_id is not None)

    @property
    def containers_running(self) -> int:
        return sum(1 for job in self.jobs if job.container_running)


def list_nodes(
    session: Session, lost_after_s: float, name: str | None = None, now: datetime | None = None
) -> list[NodeView]:
    """Every node that ever beat (or the one named), by name; three queries in all."""
    now = now or utcnow()
    query = select(Node).order_by(Node.name)
    if name is not None:
        query = query.where(Node.name == name)
    nodes = list(session.scalars(query))
    if not nodes:
        return []
    names = [node.name for node in nodes]
    held_rows = session.execute(
        select(Job, Model.uuid, Model.model_no, Model.model_ver)
        .join(Model, Model.id == Job.model_id)
        .where(Job.node.in_(names), holds_container())
        .order_by(Job.id)
    ).all()
    held: dict[str, list[HeldJob]] = {}
    by_id: dict[int, HeldJob] = {}
    for job, model_uuid, model_no, model_ver in held_rows:
        view = HeldJob(
            job_id=job.id,
            model_uuid=model_uuid,
            model_no=model_no,
            model_ver=model_ver,
            job_type=job.job_type,
            attempt=job.attempt,
            status_cd=job.status_cd,
            gpu_ids=list(job.gpu_ids or []),
            claimed_dttm=job.claimed_dttm,
            started_dttm=job.started_dttm,
            container_ended_dttm=job.container_ended_dttm,
        )
        held.setdefault(job.node or "", []).append(view)
        by_id[job.id] = view
    leases: dict[str, dict[int, int]] = {}
    for node_name, gpu_id, job_id in session.execute(
        select(GpuLease.node, GpuLease.gpu_id, GpuLease.job_id).where(GpuLease.node.in_(names))
    ):
        leases.setdefault(node_name, {})[gpu_id] = job_id
    views = []
    for node in nodes:
        node_leases = leases.get(node.name, {})
        # The declared GPUs, and any leased one the node no longer declares (a restart with
        # another NODE_GPUS): a lease is what holds it, so it is shown.
        gpu_ids = sorted(set(node.gpu_ids or []) | set(node_leases))
        age = max(0.0, (now - as_utc(node.last_seen_dttm)).total_seconds())
        views.append(
            NodeView(
                row=node,
                alive=age <= lost_after_s,
                heartbeat_age_s=age,
                gpus=[
                    Gpu(gpu, node_leases.get(gpu), by_id.get(node_leases.get(gpu, -1)))
                    for gpu in gpu_ids
                ],
                jobs=held.get(node.name, []),
            )
        )
    return views


def set_drain(session: Session, name: str, drain: bool, by: str | None) -> Node:
    """Drain or undrain a node (in the caller's transaction). The row lock is the one every
    claim on the node takes before it reads the drain (workers/launcher.py), so a claim that
    starts after this commits sees it. Draining a drained node keeps who drained it, when."""
    node = session.get(Node, name, with_for_update=True)
    if node is None:
        raise NodeNotFound(name)
    if drain and node.drain_dttm is None:
        node.drain_dttm = utcnow()
        node.drain_by = (by or "")[:128] or None
    elif not drain:
        node.drain_dttm = None
        node.drain_by = None
    session.flush()
    return node
