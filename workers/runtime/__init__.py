"""Container runtimes: how a worker starts, watches, stops and removes a job's container.

`DockerRuntime` (a Docker engine) and `ProcessRuntime` (plain local processes, for machines
without one) implement the same `ContainerRuntime` protocol. They are imported lazily so that
code needing only the types (and the process runtime's waiter) does not load the docker SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.runtime.base import (
    LABEL_ATTEMPT,
    LABEL_INSTALLATION,
    LABEL_JOB_ID,
    LABEL_JOB_TYPE,
    LABEL_MANAGED,
    LABEL_MODEL_UUID,
    LABEL_NODE,
    AlreadyExists,
    ContainerRuntime,
    ContainerRuntimeError,
    ContainerState,
    LaunchError,
    LaunchSpec,
)

if TYPE_CHECKING:
    from workers.runtime.docker import DockerRuntime
    from workers.runtime.process import ProcessRuntime

__all__ = [
    "LABEL_ATTEMPT",
    "LABEL_INSTALLATION",
    "LABEL_JOB_ID",
    "LABEL_JOB_TYPE",
    "LABEL_MANAGED",
    "LABEL_MODEL_UUID",
    "LABEL_NODE",
    "AlreadyExists",
    "ContainerRuntime",
    "ContainerRuntimeError",
    "ContainerState",
    "DockerRuntime",
    "LaunchError",
    "LaunchSpec",
    "ProcessRuntime",
]


def __getattr__(name: str) -> Any:
    if name == "DockerRuntime":
        from workers.runtime.docker import DockerRuntime

        return DockerRuntime
    if name == "ProcessRuntime":
        from workers.runtime.process import ProcessRuntime

        return ProcessRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
