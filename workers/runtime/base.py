"""The contract between the worker and whatever runs a job's training process.

One job attempt = one "container" with a deterministic name. The name is the idempotency key:
launching a name that exists never starts a second process (ARCHITECTURE.md, "Launch is
idempotent by name"). Nothing here talks to the database; the worker records a container's
final state (exit code, OOM flag, finish time, log tail) before it calls `remove`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from app import jobfiles
from app.domain import sandbox
from app.domain.completion import CONTAINER_START_FAILED
from app.domain.timefmt import as_utc

log = logging.getLogger(__name__)

# Label keys. Reconciliation finds its containers by these, so every runtime sets the first
# three itself and the worker supplies the rest (see `LaunchSpec.labels`).
LABEL_MANAGED = "trainyard.managed"
LABEL_NODE = "trainyard.node"
# Several installations may share one Docker engine (and default node names): every listing,
# event filter and adoption also matches the installation id, so one never touches another's.
LABEL_INSTALLATION = "trainyard.installation"
LABEL_MODEL_UUID = "trainyard.model_uuid"
LABEL_JOB_ID = "trainyard.job_id"
LABEL_JOB_TYPE = "trainyard.job_type"
LABEL_ATTEMPT = "trainyard.attempt"

# Docker's own rule for container names; the process runtime uses the name as a file name, so
# the same rule also keeps "/" and ".." out of its state directory.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def nvidia_visible_devices(gpu_ids: tuple[int, ...]) -> str:
    """NVIDIA_VISIBLE_DEVICES for a job: its leased GPU ids, or "void" (no GPU at all; "" or
    unset would let the NVIDIA runtime fall back to the image's own value, often "all").
    Set in the container's environment it overrides an image's `ENV NVIDIA_VISIBLE_DEVICES`,
    so on a host whose default runtime is nvidia a CPU job still sees no GPU."""
    return ",".join(str(i) for i in gpu_ids) or "void"


@dataclass(frozen=True)
class LaunchSpec:
    """What to run for one job attempt.

    `argv` is handed to the runtime as a list and never joined into a shell string. For Docker it
    is the container's command, appended to the image's ENTRYPOINT (the trainer contract,
    trainer/README.md) unless `entrypoint` replaces it. The process runtime has no image: it runs
    `entrypoint + argv`, with its own default entrypoint standing in for the image's.
    """

    name: str
    image: str
    argv: list[str]
    labels: dict[str, str]
    output_dir: Path  # mounted read-write at the same path inside the container
    dataset_dir: Path | None  # mounted read-only at the same path
    env: dict[str, str] = field(default_factory=dict)
    gpu_ids: tuple[int, ...] = ()
    memory_mb: int | None = None
    cpus: float | None = None
    pids_limit: int = sandbox.PIDS_LIMIT
    user: str = sandbox.CONTAINER_USER
    # Additions to the brief, all defaulting to the hardened choice:
    entrypoint: list[str] | None = None  # None: keep the image's ENTRYPOINT
    network: bool = False  # False: the container gets no network at all
    read_only_rootfs: bool = True  # True: only output_dir, /tmp and the scratch are writable
    shm_size_mb: int | None = None  # None: sandbox.shm_mb's default for memory_mb

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"invalid container name {self.name!r}")
        for label, path in (("output_dir", self.output_dir), ("dataset_dir", self.dataset_dir)):
            # Mounted at the same path inside the container, so it must not depend on the
            # worker's current directory.
            if path is not None and not Path(path).is_absolute():
                raise ValueError(f"{label} must be an absolute path: {path}")
        bad = [k for k, v in self.labels.items() if not isinstance(v, str)]
        if bad:
            # Docker rejects non-string label values only at create time; fail early instead.
            raise ValueError(f"label values must be strings: {bad}")
        if self.memory_mb is not None and self.memory_mb <= 0:
            raise ValueError("memory_mb must be positive")
        if self.cpus is not None and self.cpus <= 0:
            raise ValueError("cpus must be positive")
        if self.shm_size_mb is not None and self.shm_size_mb <= 0:
            raise ValueError("shm_size_mb must be positive")
        bad_env = sorted(k for k in self.env if sandbox.reserved_env_name(k))
        if bad_env:
            # The API refuses these on a model; a spec carrying one is a bug upstream.
            raise ValueError(f"env sets names the platform owns: {bad_env}")

    @property
    def uid(self) -> int:
        """The numeric uid the container runs as (`user` is "uid:gid")."""
        return int(self.user.split(":", 1)[0])


@dataclass(frozen=True)
class ContainerState:
    """A runtime-neutral snapshot of one container.

    `exit_code` is None while the container has not ended (created or running). A process that
    ended while nobody was watching it reports -1 ("exited, code unknown"; process runtime only).
    Death by signal N is reported as 128+N in both runtimes (137 = SIGKILL), as Docker does.
    """

    name: str
    running: bool
    status: str  # docker's vocabulary: "created", "running", "exited", "dead", ...
    exit_code: int | None
    oom_killed: bool
    started_at: datetime | None
    finished_at: datetime | None
    labels: dict[str, str]
    # Addition: why a start failed (Docker's State.Error, or the process runtime's exec error).
    error: str = ""

    @property
    def ended(self) -> bool:
        """True once the container ran and stopped; False while created or running."""
        return not self.running and self.status in ("exited", "dead")


#: The most log bytes one `logs_since` call returns; the next call continues where it stopped.
LOG_READ_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class LogRead:
    """What a container printed after a cursor: `data` (stdout and stderr interleaved, as
    `logs_tail` gives them) and the cursor to pass next time. A cursor is the runtime's own
    opaque text; None (or "") means "from the first byte"."""

    data: bytes
    cursor: str


class ContainerRuntimeError(Exception):
    """Base class of the errors a runtime raises on purpose."""


class AlreadyExists(ContainerRuntimeError):
    """`launch` found a container with that name: it was launched before (maybe by a duplicate
    message). The existing container is left untouched; `state` says what it is doing."""

    def __init__(self, state: ContainerState) -> None:
        super().__init__(f"container {state.name!r} already exists ({state.status})")
        self.state = state


class LaunchError(ContainerRuntimeError):
    """The container could not be created or started (missing image, bad mount source, exec
    failure, no GPU driver...). `state` is the container as it was left (Docker keeps a
    container that failed to start in "created"), or None when nothing was created. `code`
    names the cause (app.domain.completion: IMAGE_NOT_FOUND, INVALID_RUNTIME_SETTINGS, ...)."""

    def __init__(
        self, message: str, state: ContainerState | None = None, code: str = CONTAINER_START_FAILED
    ) -> None:
        super().__init__(message)
        self.state = state
        self.code = code


@runtime_checkable
class ContainerRuntime(Protocol):
    node: str
    installation: str

    def launch(self, spec: LaunchSpec) -> ContainerState:
        """Create and start. Raises AlreadyExists if the name exists, except that a container
        stuck in "created" (a crash between create and start) is started and returned."""
        ...

    def inspect(self, name: str) -> ContainerState | None:
        """The container's state, or None when it does not exist."""
        ...

    def stop(self, name: str, grace_s: float) -> ContainerState | None:
        """SIGTERM, wait up to grace_s, then SIGKILL; returns the final state (None if the
        container did not exist). Stopping an ended container just returns its state."""
        ...

    def logs_tail(self, name: str, lines: int = 50) -> str:
        """The last `lines` lines of stdout+stderr ("" when the container is gone)."""
        ...

    def images(self) -> list[str] | None:
        """The image references this node can run ("repo:tag", sorted), for the heartbeat;
        None when any reference runs (a runtime without images)."""
        ...

    def logs_since(self, name: str, cursor: str | None) -> LogRead:
        """What the container printed after `cursor` (at most LOG_READ_MAX_BYTES), each byte
        once across calls that pass the cursor along; nothing when it does not exist."""
        ...

    def remove(self, name: str) -> None:
        """Remove the container (killing it if it still runs); no error if already gone."""
        ...

    def list_managed(self, node: str | None = None) -> list[ContainerState]:
        """This installation's containers (`ownership_labels`), of one node when given."""
        ...

    def wait_for_exit_events(self, since: datetime | None, timeout_s: float) -> list[str]:
        """Names of this node's managed containers that ended at or after `since` (None: from
        now), returning as soon as there is at least one, or [] after about timeout_s.

        Delivery is at-least-once: a name can come back again on a later call, so consumers
        must be idempotent. To miss nothing, take `t = utcnow()` before each call and pass the
        previous call's `t` as `since`. Back this with a periodic `list_managed`/`inspect`
        sweep: Docker keeps only a short in-memory event history.
        """
        ...


def scratch_path(scratch_root: Path, name: str) -> Path:
    """A job attempt's scratch folder on the node's disk: one per container name, so the
    runtime that removes the container removes its scratch with it."""
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid container name {name!r}")
    return Path(scratch_root) / name


def make_scratch(scratch_root: Path, name: str, uid: int) -> Path:
    """Create the folder (idempotent: a relaunch of a "created" container finds it) writable
    by the container's user: owned by it when we are root, else open to all (0777, like the
    output folders: the engine's uid mapping is not ours to know)."""
    path = scratch_path(scratch_root, name)
    if os.geteuid() == 0:
        jobfiles.make_dirs(_scratch(scratch_root, name), owner=uid)
    else:
        jobfiles.make_dirs(_scratch(scratch_root, name), mode=0o777)
    return path


def remove_scratch(scratch_root: Path, name: str) -> None:
    """Delete a job attempt's scratch folder and all in it (no error if it is not there),
    through the gate (app/jobfiles.py: links removed, never followed)."""
    jobfiles.remove_tree(_scratch(scratch_root, name))


def _scratch(scratch_root: Path, name: str) -> jobfiles.JobPath:
    """The scratch folder as the gate takes it: the scratch root is trusted, the rest is the
    job's."""
    return jobfiles.beneath(Path(scratch_root)) / scratch_path(scratch_root, name).name


def disk_usage_mb(path: Path) -> int:
    """Disk space the files under `path` (a scratch folder: the job writes there while this
    runs) take, as `du`, in whole MB. Walked through the job-file gate (app/jobfiles.py): no
    link followed, not even one swapped in for a folder during the walk; the parent of
    `path` is the trusted root."""
    folder = jobfiles.beneath(path.parent) / path.name
    return jobfiles.disk_usage(folder) // jobfiles.MiB


def ownership_labels(installation: str, node: str | None = None) -> dict[str, str]:
    """The labels that make a container this installation's (and this node's, when given)."""
    labels = {LABEL_MANAGED: "true", LABEL_INSTALLATION: installation}
    if node is not None:
        labels[LABEL_NODE] = node
    return labels


def managed_labels(spec: LaunchSpec, node: str, installation: str) -> dict[str, str]:
    """The spec's labels plus those every runtime owns. A spec meant for another node is a
    routing bug upstream: refuse it rather than run a job where its GPU lease is not."""
    wanted = spec.labels.get(LABEL_NODE, node)
    if wanted != node:
        raise ValueError(f"spec is for node {wanted!r}, this runtime is node {node!r}")
    return {**spec.labels, **ownership_labels(installation, node)}


def same_launch(state_labels: dict[str, str], wanted: dict[str, str]) -> bool:
    """Whether a container carries every label of `wanted`: then it was created for this very
    job attempt. Subset, not equality: Docker adds the image's own labels to the container's."""
    return all(state_labels.get(k) == v for k, v in wanted.items())


def parse_rfc3339(value: str | None) -> datetime | None:
    """Docker's timestamps; its zero time 0001-01-01T00:00:00Z means "never" and maps to None.

    Python 3.11's fromisoformat accepts "Z" and truncates nanoseconds to microseconds.
    """
    if not value or value.startswith("0001-01-01"):
        return None
    return as_utc(datetime.fromisoformat(value))
