"""A node's own settings (environment variables; all listed in README.md)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from app.config import node_lost_after_s
from app.domain import sandbox


def _parse_gpu_ids(text: str) -> tuple[int, ...]:
    """`NODE_GPUS="0,1,3"` → (0, 1, 3); empty → no GPUs."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    try:
        parsed = tuple(int(part) for part in ids)
    except ValueError:
        raise ValueError(f"NODE_GPUS must be comma-separated GPU ids, got {text!r}") from None
    if len(set(parsed)) != len(parsed):
        raise ValueError(f"NODE_GPUS lists a GPU twice: {text!r}")
    return parsed


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _non_negative_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number of seconds (0: off), got {text!r}")
    return int(text)


def _usable_cpus() -> int:
    """NODE_MAX_JOBS by default: one training container per CPU core this worker may use.
    A training is CPU-bound (Docker sets no CPU limit unless the job asks for `cpus`), so
    more containers than cores only make every one of them slower."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def host_memory_default_mb(default_job_memory_mb: int) -> int:
    """NODE_MEMORY_MB by default: the host's memory less a reserve for the system, Docker and
    the worker (a tenth of it, at least 1 GiB), but never less than one job of the default
    size, so that a small host still runs one job at a time."""
    try:
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):  # no sysconf: assume what one job needs
        return default_job_memory_mb
    reserve_mb = max(1024, total_mb // 10)
    return max(default_job_memory_mb, total_mb - reserve_mb)


@dataclass(frozen=True)
class NodeSettings:
    node: str
    gpu_ids: tuple[int, ...]
    runtime: str  # "docker", "process" or "auto" (Docker when an engine answers)
    stop_grace_s: float
    supervise_interval_s: float
    sweep_interval_s: float
    requeue_after_s: float
    log_tail_lines: int
    state_dir: Path  # the process runtime's records
    default_dataset: str
    default_memory_mb: int  # a job that asks for no memory limit still gets this one
    node_lost_after_s: float  # a node without a heartbeat this long is presumed lost
    drain_file: Path  # legacy drain flag: while it exists the node claims no new job
    max_jobs: int  # containers this node holds at once (claimed, running or not yet removed)
    memory_mb: int  # the sum of their memory limits never exceeds this
    # Each job's scratch folder lives under this (on this node's disk; the Docker engine must
    # see the same path); a job whose scratch grows past scratch_max_mb is ended.
    scratch_root: Path = Path("var/scratch")
    scratch_max_mb: int = sandbox.DEFAULT_SCRATCH_MAX_MB
    scratch_check_interval_s: float = sandbox.SCRATCH_CHECK_INTERVAL_S
    # How often the log collector stores what running containers printed (workers/logcollector.py).
    log_collect_interval_s: float = 1.0
    # A model's stallTimeoutS when it sets none (0: no stall detection), in seconds.
    default_stall_timeout_s: int = 0
    # A node silent this long is presumed gone for good, its containers with it (0: never;
    # workers/heartbeat.py): a retry or resume of its jobs may then start on another node.
    node_gone_after_s: float = 0.0

    @classmethod
    def from_env(cls) -> NodeSettings:
        home = Path(os.environ.get("TRAINYARD_HOME", Path.cwd() / "var"))
        node = os.environ.get("NODE_NAME") or socket.gethostname()
        default_memory_mb = _positive_int("DEFAULT_JOB_MEMORY_MB", sandbox.DEFAULT_JOB_MEMORY_MB)
        return cls(
            node=node,
            gpu_ids=_parse_gpu_ids(os.environ.get("NODE_GPUS", "")),
            runtime=os.environ.get("WORKER_RUNTIME", "auto"),
            stop_grace_s=float(os.environ.get("STOP_GRACE_S", "10")),
            supervise_interval_s=float(os.environ.get("SUPERVISE_INTERVAL_S", "2")),
            sweep_interval_s=float(os.environ.get("SWEEP_INTERVAL_S", "15")),
            requeue_after_s=float(os.environ.get("REQUEUE_AFTER_S", "30")),
            log_tail_lines=int(os.environ.get("LOG_TAIL_LINES", "50")),
            state_dir=Path(os.environ.get("PROCESS_STATE_DIR", str(home / "processes" / node))),
            default_dataset=os.environ.get("DEFAULT_DATASET", "demo"),
            default_memory_mb=default_memory_mb,
            node_lost_after_s=node_lost_after_s(),
            drain_file=drain_file(home, node),
            max_jobs=_positive_int("NODE_MAX_JOBS", _usable_cpus()),
            memory_mb=_positive_int("NODE_MEMORY_MB", host_memory_default_mb(default_memory_mb)),
            scratch_root=Path(os.environ.get("JOB_SCRATCH_ROOT") or home / "scratch" / node),
            scratch_max_mb=_positive_int("JOB_SCRATCH_MAX_MB", sandbox.DEFAULT_SCRATCH_MAX_MB),
            scratch_check_interval_s=float(
                os.environ.get("SCRATCH_CHECK_INTERVAL_S") or sandbox.SCRATCH_CHECK_INTERVAL_S
            ),
            log_collect_interval_s=float(os.environ.get("LOG_COLLECT_INTERVAL_S", "1")),
            default_stall_timeout_s=_non_negative_int("DEFAULT_STALL_TIMEOUT_S", 0),
            node_gone_after_s=float(_non_negative_int("NODE_GONE_AFTER_S", 0)),
        )


def drain_file(home: Path, node: str) -> Path:
    """The legacy drain flag of a node: `$TRAINYARD_HOME/drain-<node>` (the database state of
    workers/drain.py is the main one). Checked at every claim, so creating or removing it
    takes effect without a restart."""
    return home / f"drain-{node}"
