"""/api/nodes: the worker nodes, their GPUs and the jobs they hold; drain and undrain.

Drain is state in the database (tb_node.drain_dttm), read by the node at every claim
(workers/drain.py); `trainyard drain NODE` writes the same state.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, Response

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import quote
from app.appstate import state
from app.db.session import transaction
from app.domain.states import JobStatus
from app.domain.timefmt import format_time
from app.services.nodes import MAX_NODE_NAME, HeldJob, NodeNotFound, NodeView, list_nodes, set_drain

bp = Blueprint("nodes", __name__, url_prefix="/api/nodes")


def _job(job: HeldJob, tz: ZoneInfo) -> responses.NodeJob:
    return {
        "jobId": job.job_id,
        "modelUuid": str(job.model_uuid),
        "modelNo": job.model_no,
        "modelVer": job.model_ver,
        "jobType": job.job_type,
        "attempt": job.attempt,
        "statusCd": job.status_cd,
        "statusName": JobStatus(job.status_cd).display_name,
        "gpuIds": job.gpu_ids,
        "claimedDttm": format_time(job.claimed_dttm, tz),
        "startedDttm": format_time(job.started_dttm, tz),
        "containerRunning": job.container_running,
    }


def node_info(view: NodeView, tz: ZoneInfo) -> responses.NodeInfo:
    row = view.row
    return {
        "name": row.name,
        "state": "alive" if view.alive else "lost",
        "lastHeartbeatDttm": format_time(row.last_seen_dttm, tz),
        "heartbeatAgeS": round(view.heartbeat_age_s, 1),
        "startedDttm": format_time(row.started_dttm, tz),
        "runtime": row.runtime,
        "capacity": {
            "maxJobs": row.max_jobs,
            "memoryMb": row.memory_mb,
            "jobsHeld": len(view.jobs),
        },
        "gpus": [
            {
                "gpuId": gpu.gpu_id,
                "jobId": gpu.job_id,
                "modelUuid": str(gpu.job.model_uuid) if gpu.job else None,
                "modelNo": gpu.job.model_no if gpu.job else None,
                "modelVer": gpu.job.model_ver if gpu.job else None,
            }
            for gpu in view.gpus
        ],
        "gpusFree": len(view.gpus) - view.gpus_leased,
        "gpusLeased": view.gpus_leased,
        "containersRunning": view.containers_running,
        "jobs": [_job(job, tz) for job in view.jobs],
        "drain": {
            "draining": view.draining,
            "requestedDttm": format_time(row.drain_dttm, tz),
            "requestedBy": row.drain_by,
            "flagFile": bool(row.drain_flag_file),
        },
    }


def _node_name(value: str) -> str:
    if not value or len(value) > MAX_NODE_NAME or not value.isprintable():
        raise ApiError(
            400,
            "INVALID_NODE_NAME",
            f"node name {quote(value)} is not a node name (1 to {MAX_NODE_NAME} printable "
            "characters, as NODE_NAME).",
        )
    return value


def _not_found(name: str) -> ApiError:
    return ApiError(404, "NODE_NOT_FOUND", f"No node named {quote(name)} has sent a heartbeat.")


def _one(name: str) -> responses.NodeInfo:
    rt = state()
    with rt.reads() as session:
        views = list_nodes(session, rt.settings.node_lost_after_s, name=name)
        if not views:
            raise _not_found(name)
        return node_info(views[0], rt.settings.tz)


@bp.get("")
def nodes() -> tuple[Response, int]:
    rt = state()
    with rt.reads() as session:
        views = list_nodes(session, rt.settings.node_lost_after_s)
        data: responses.NodeList = {
            "nodes": [node_info(view, rt.settings.tz) for view in views],
            "lostAfterS": rt.settings.node_lost_after_s,
        }
    return ok(data)


@bp.get("/<name>")
def node(name: str) -> tuple[Response, int]:
    return ok(_one(_node_name(name)))


def _set_drain(name: str, drain: bool) -> tuple[Response, int]:
    name = _node_name(name)
    try:
        with transaction(state().sessions) as session:
            set_drain(session, name, drain, by="api")
    except NodeNotFound:
        raise _not_found(name) from None
    return ok(_one(name))


@bp.post("/<name>/drain")
def drain(name: str) -> tuple[Response, int]:
    """The node takes no new job from now on; the jobs it holds finish."""
    return _set_drain(name, True)


@bp.post("/<name>/undrain")
def undrain(name: str) -> tuple[Response, int]:
    """The node takes new jobs again (unless its legacy flag file still exists)."""
    return _set_drain(name, False)
