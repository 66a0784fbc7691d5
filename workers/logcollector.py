"""The node's log collector: a thread that stores what this node's running containers print,
and ends the jobs that stall.

Every LOG_COLLECT_INTERVAL_S it asks the runtime for each running job's output since that
job's cursor (`ContainerRuntime.logs_since`: Docker's log timestamps, the process runtime's
byte offset) and appends it to the job's stored log (app/joblogs.py: on the job storage,
size-capped and rotated, kept after the container is removed). The cursor is stored beside the
log (`cursor`), after the bytes it covers, so a restarted worker goes on where the last one
stopped; a crash between the two writes repeats that one read once, never loses it. When a
container ends, `store_final_log` (called by workers/ending.py before the end is recorded)
takes the rest, so a reader that sees the end recorded has every byte.

Stalls (a model's `stallTimeoutS`, else DEFAULT_STALL_TIMEOUT_S; 0 or unset: off): a running
job whose container printed nothing and whose progress.json did not change for that long is
ended `FAILED` with `STALLED: …` (step ERROR) through the status-write path, then stopped and
recorded like a cancel (SIGTERM, grace, SIGKILL; its log and the epochs it finished are kept).
Time is counted on this node from when it first watched the job, so a worker restart gives a
stalled job at most one more timeout.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select

from app import jobfiles, joblogs
from app.db.models import Job, Model
from app.domain import layout
from app.domain.jobtext import log_tail
from app.domain.states import JobStatus, JobType
from app.jobfiles import FileKind, JobFileError, JobPath
from workers.context import WorkerContext
from workers.periodic import Periodic

log = logging.getLogger(__name__)

STALLED = "STALLED"
CURSOR_FILE = "cursor"
# A container printing faster than this per tick is read again at once, up to this many times.
_READS_PER_TICK = 8

# One collection of a job at a time in this process (the collector's tick and an ending).
_job_locks: dict[int, threading.Lock] = {}
_job_locks_guard = threading.Lock()


def _lock_of(job_id: int) -> threading.Lock:
    with _job_locks_guard:
        return _job_locks.setdefault(job_id, threading.Lock())


def _forget_lock(job_id: int) -> None:
    with _job_locks_guard:
        _job_locks.pop(job_id, None)


def log_folder(ctx: WorkerContext, model_uuid: object, job_id: int) -> JobPath:
    return joblogs.log_dir(jobfiles.job_root(ctx.settings), model_uuid, job_id)


def collect(ctx: WorkerContext, job_id: int, container: str, folder: JobPath) -> int:
    """Store what the container printed since the stored cursor; returns the bytes stored."""
    stored = 0
    with _lock_of(job_id):
        cursor = _read_cursor(folder)
        for _ in range(_READS_PER_TICK):
            read = ctx.runtime.logs_since(container, cursor)
            if read.data:
                joblogs.append(folder, read.data)
                stored += len(read.data)
            if read.cursor and read.cursor != cursor:
                _write_cursor(folder, read.cursor)
                cursor = read.cursor
            if not read.data:
                break
    return stored


def store_final_log(
    ctx: WorkerContext, job_id: int, container: str, model_uuid: object
) -> str | None:
    """The container ended: store the rest of its output, then answer the tail the job row
    keeps (LOG_TAIL_LINES whole lines, never starting inside a traceback). None when the
    stored log cannot be used (then the caller falls back to the runtime's own tail).

    Whatever fails here is caught: the log folder is the job's to write (a planted link, a
    forged cursor), and the end must be recorded whatever the job left there."""
    folder = log_folder(ctx, model_uuid, job_id)
    try:
        collect(ctx, job_id, container, folder)
        return joblogs.tail(folder, ctx.node.log_tail_lines)
    except Exception as exc:
        log.warning("job %s: its log could not be stored: %s", job_id, exc)
        return None
    finally:
        _forget_lock(job_id)


def runtime_tail(ctx: WorkerContext, container: str) -> str:
    """The runtime's own tail (the stored log could not be used), cut as the stored one."""
    lines = ctx.node.log_tail_lines
    return log_tail(ctx.runtime.logs_tail(container, lines * 2), lines)


def _read_cursor(folder: JobPath) -> str | None:
    try:
        raw = jobfiles.read_file(folder / CURSOR_FILE, FileKind.JSON)
    except JobFileError:
        return None
    text = raw.decode("ascii", "replace").strip()
    return text or None


def _write_cursor(folder: JobPath, cursor: str) -> None:
    jobfiles.make_dirs(folder)
    jobfiles.write_file(folder / CURSOR_FILE, cursor.encode("ascii", "replace"))


# --- the thread -------------------------------------------------------------------------------


@dataclass
class _Watch:
    """What the collector last saw of one running job."""

    active_at: float  # monotonic: last new output or progress.json change (or first seen)
    progress_mark: tuple[int, int] | None  # (mtime_ns, size) of progress.json


@dataclass(frozen=True)
class _Running:
    job_id: int
    container: str
    model_uuid: str
    job_type: JobType
    stall_timeout_s: int


class LogCollector(Periodic):
    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("trainyard-logs", self.tick, ctx.node.log_collect_interval_s)
        self.ctx = ctx
        self._watches: dict[int, _Watch] = {}

    def tick(self) -> list[int]:
        """Collect every running job's output once; returns the jobs ended as stalled."""
        running = self._running_jobs()
        self._watches = {j.job_id: w for j in running if (w := self._watches.get(j.job_id))}
        stalled = []
        for job in running:
            try:
                if self._collect_and_check(job):
                    stalled.append(job.job_id)
            except Exception as exc:  # one job's trouble must not stop the others' logs
                log.warning("job %s: log collection failed: %s", job.job_id, exc)
        for job_id in stalled:
            self._watches.pop(job_id, None)
        return stalled

    def _running_jobs(self) -> list[_Running]:
        ctx = self.ctx
        with ctx.db() as session:
            rows = session.execute(
                select(Job.id, Job.container_name, Job.job_type, Model.uuid, Model.stall_timeout_s)
                .join(Model, Model.id == Job.model_id)
                .where(
                    Job.node == ctx.node.node,
                    Job.status_cd == JobStatus.RUNNING.value,
                    Job.container_ended_dttm.is_(None),
                )
                .order_by(Job.id)
            ).all()
        default = ctx.node.default_stall_timeout_s
        return [
            _Running(
                job_id=job_id,
                container=ctx.container_of(job_id, name),
                model_uuid=str(model_uuid),
                job_type=JobType(job_type),
                stall_timeout_s=default if timeout is None else timeout,
            )
            for job_id, name, job_type, model_uuid, timeout in rows
            if job_id not in ctx.launching
        ]

    def _collect_and_check(self, job: _Running) -> bool:
        ctx = self.ctx
        now = time.monotonic()
        folder = log_folder(ctx, job.model_uuid, job.job_id)
        printed = collect(ctx, job.job_id, job.container, folder)
        mark = self._progress_mark(job)
        watch = self._watches.get(job.job_id)
        if watch is None or printed or mark != watch.progress_mark:
            self._watches[job.job_id] = _Watch(now, mark)
            return False
        if job.stall_timeout_s <= 0 or now - watch.active_at < job.stall_timeout_s:
            return False
        return self._end_stalled(job)

    def _progress_mark(self, job: _Running) -> tuple[int, int] | None:
        root = jobfiles.job_root(self.ctx.settings)
        folder = layout.job_output_dir(root, job.model_uuid, job.job_type, job.job_id)
        try:
            with jobfiles.open_file(folder / "progress.json", FileKind.JSON) as handle:
                info = os.fstat(handle.fileno())
        except JobFileError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def _end_stalled(self, job: _Running) -> bool:
        from workers.ending import fail_and_stop

        ctx = self.ctx
        reason = f"no log output and no progress.json change for {job.stall_timeout_s} s"
        folder = log_folder(ctx, job.model_uuid, job.job_id)
        try:
            tail = joblogs.tail(folder, ctx.node.log_tail_lines) or None
        except JobFileError:
            tail = None
        return fail_and_stop(ctx, job.job_id, f"{STALLED}: {reason}", tail)
