"""The sandbox a job's container runs in: every limit and default, in one place.

trainer/README.md ("Sandbox") documents these values; tests/runtime/test_sandbox.py checks
that the README's table says what `documented_defaults()` says and that a real container gets
exactly these values (`docker inspect`). Change a value here and both follow, or fail loudly.

Pure: the API validates a model's runtime settings with these, the node applies them.
"""

from __future__ import annotations

import re

CONTAINER_USER = "1000:1000"  # uid:gid forced whatever the image's USER says
CONTAINER_USERNAME = "trainer"  # USER and LOGNAME, so getpass.getuser() works without a passwd
CONTAINER_HOME = "/tmp"  # the image's home directory is on the read-only root
PIDS_LIMIT = 512  # processes and threads of one container (a fork bomb stops here)
TMP_TMPFS_MB = 512  # /tmp is a tmpfs: its pages count against the memory limit
DEFAULT_JOB_MEMORY_MB = 4096  # DEFAULT_JOB_MEMORY_MB: a model that asks for no memory limit
SCRATCH_MOUNT = "/scratch"  # the per-job scratch folder (on the node's disk) inside the container
DEFAULT_SCRATCH_MAX_MB = 10240  # JOB_SCRATCH_MAX_MB: above this the node ends the job
# /dev/shm by default: half the memory limit, at least 1024 MB, never above the memory limit.
# PyTorch DataLoader workers pass batches through it; Docker's own 64 MB is far too small.
SHM_FLOOR_MB = 1024
SHM_DIVISOR = 2
MAX_SIZE_MB = 1_048_576  # bound of memory_mb and shmSizeMb (1 TiB)

# A model's `env`: bounded, so it fits a launch and a row.
ENV_MAX_VARS = 64
ENV_MAX_VALUE_CHARS = 4096
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Names the platform sets for the trainer; a model may not set them (a 400 names the key).
RESERVED_ENV_NAMES = frozenset({"HOME", "USER", "LOGNAME", "TMPDIR", "CUDA_VISIBLE_DEVICES"})
RESERVED_ENV_PREFIXES = ("TRAINYARD_", "NVIDIA_")
# Set by the platform: where the job's scratch folder is (/scratch in a container).
SCRATCH_ENV = "TRAINYARD_SCRATCH_DIR"

# Scratch's size policy: how often the node measures each running job's scratch folder.
SCRATCH_CHECK_INTERVAL_S = 10.0
SCRATCH_LIMIT_CODE = "SCRATCH_LIMIT_EXCEEDED"


def default_shm_mb(memory_mb: int) -> int:
    """/dev/shm of a job that sets no `shmSizeMb`: its memory limit over SHM_DIVISOR, at least
    SHM_FLOOR_MB, capped by the memory limit (shm pages count against it anyway)."""
    return min(memory_mb, max(SHM_FLOOR_MB, memory_mb // SHM_DIVISOR))


def shm_mb(shm_size_mb: int | None, memory_mb: int | None) -> int:
    """The /dev/shm size a container gets: the model's `shmSizeMb`, else the default for its
    memory limit (no limit at all: the floor)."""
    if shm_size_mb is not None:
        return shm_size_mb
    return default_shm_mb(memory_mb) if memory_mb is not None else SHM_FLOOR_MB


def reserved_env_name(name: str) -> bool:
    return name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES)


def documented_defaults() -> dict[str, str]:
    """The "Default" column of trainer/README.md's sandbox table, row by row."""
    return {
        "Root filesystem": "read-only",
        "User": f"`{CONTAINER_USER}`, `USER`=`LOGNAME`=`{CONTAINER_USERNAME}`",
        "HOME": f"`{CONTAINER_HOME}`",
        "Processes (pids limit)": str(PIDS_LIMIT),
        "Memory": f"{DEFAULT_JOB_MEMORY_MB} MB, no swap",
        "/tmp": f"tmpfs, {TMP_TMPFS_MB} MB",
        "/dev/shm": (
            f"memory limit / {SHM_DIVISOR}, at least {SHM_FLOOR_MB} MB, at most the memory limit"
        ),
        "Network": "none",
        "Scratch": (
            f"`{SCRATCH_MOUNT}` on the node's disk, `TMPDIR`=`{SCRATCH_ENV}`=`{SCRATCH_MOUNT}`, "
            f"{DEFAULT_SCRATCH_MAX_MB} MB"
        ),
        "Environment": (
            f"the image's, plus the model's `env` (at most {ENV_MAX_VARS} variables)"
        ),
        "Capabilities": "all dropped, `no-new-privileges`",
        "GPUs": "only the job's leased GPUs (`NVIDIA_VISIBLE_DEVICES`)",
    }
