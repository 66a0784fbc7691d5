"""The scratch folder's size policy: a running job whose scratch grows past JOB_SCRATCH_MAX_MB
is ended by its node, `ERROR` with `SCRATCH_LIMIT_EXCEEDED`, its log tail and outputs kept.

The scratch is a plain folder on the node's disk (no quota a filesystem would enforce), so the
node measures it every SCRATCH_CHECK_INTERVAL_S, as `du` would. A job can overshoot by what it
writes between two checks. The folder goes with the container (the runtime's `remove`).
"""

from __future__ import annotations

from pathlib import Path

from app.domain.sandbox import SCRATCH_LIMIT_CODE
from workers.context import WorkerContext
from workers.ending import fail_and_stop
from workers.runtime.base import LABEL_JOB_ID, disk_usage_mb, scratch_path


def enforce_scratch_limit(ctx: WorkerContext) -> list[int]:
    """End every running job of this node whose scratch is over the limit; their ids."""
    root: Path | None = getattr(ctx.runtime, "scratch_root", None)
    if root is None:
        return []
    limit = ctx.node.scratch_max_mb
    ended = []
    for state in ctx.runtime.list_managed(ctx.node.node):
        job_id = state.labels.get(LABEL_JOB_ID, "")
        if not state.running or not job_id.isdigit():
            continue
        used = disk_usage_mb(scratch_path(root, state.name))
        if used > limit:
            end_over_limit(ctx, int(job_id), state.name, used, limit)
            ended.append(int(job_id))
    return ended


def end_over_limit(ctx: WorkerContext, job_id: int, name: str, used_mb: int, limit: int) -> None:
    """Ended like a cancel, its error naming the limit: the epochs it finished are kept
    (workers/completion.py keeps the data of a job that already ended)."""
    error = (
        f"{SCRATCH_LIMIT_CODE}: the job's scratch folder holds {used_mb} MB, more than "
        f"JOB_SCRATCH_MAX_MB={limit}"
    )
    fail_and_stop(ctx, job_id, error, ctx.runtime.logs_tail(name, ctx.node.log_tail_lines))
