"""Container runtime on a Docker engine (docker SDK), one hardened container per job attempt.

Why each choice, in short:
- The container name is the idempotency key: `create` answers 409 when the name exists, which
  means "already launched". A container left in "created" (a crash between create and start)
  is started, not duplicated.
- Never `auto_remove`/`remove=True`: the exit code, OOM flag and log tail must be read (and
  stored by the worker) before the container goes (ARCHITECTURE.md, "Record before remove").
- Never pull: an image that is not on the node is a launch error, not a silent download.
- No Celery task waits on a container; `wait_for_exit_events` is for the node supervisor.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.types import DeviceRequest, LogConfig, Mount

from app.domain import sandbox
from app.domain.completion import IMAGE_NOT_FOUND
from app.domain.timefmt import as_utc, utcnow
from app.domain.transitions import INVALID_RUNTIME_SETTINGS
from workers.runtime.base import (
    LOG_READ_MAX_BYTES,
    AlreadyExists,
    ContainerState,
    LaunchError,
    LaunchSpec,
    LogRead,
    make_scratch,
    managed_labels,
    nvidia_visible_devices,
    ownership_labels,
    parse_rfc3339,
    remove_scratch,
    same_launch,
)

log = logging.getLogger(__name__)

# The root filesystem is read-only by default; /tmp stays writable (and HOME points there) for
# libraries that insist on a cache or scratch file. tmpfs pages count against the memory limit.
# Every value of the sandbox is in app/domain/sandbox.py (documented in trainer/README.md).
TMPFS_OPTIONS = f"rw,nosuid,nodev,size={sandbox.TMP_TMPFS_MB}m,mode=1777"
# Training loops can print a lot for days; rotate so one job cannot fill the node's disk.
# json-file is set explicitly because `docker logs` (logs_tail) must work whatever the
# daemon's default log driver is.
LOG_CONFIG = LogConfig(type=LogConfig.types.JSON, config={"max-size": "20m", "max-file": "3"})
_DOCKER_SOCKETS = (Path("/var/run/docker.sock"), Path("/run/docker.sock"))
# States in which a container has not finished, so its ExitCode is meaningless.
_NOT_ENDED = frozenset({"created", "running", "paused", "restarting"})


class DockerRuntime:
    """`node` is keyword-only: it names this machine in labels and filters (a parameter without
    a default cannot follow `client=None` positionally)."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        node: str,
        installation: str,
        scratch_root: Path | None = None,
    ) -> None:
        self._client = client if client is not None else docker.from_env()
        self._api = self._client.api
        self.node = node
        self.installation = installation
        # Each container's scratch folder, `scratch_root/<name>`, mounted at /scratch and
        # removed with the container. None: no scratch (the engine must see this path as we
        # do: Docker-out-of-Docker mounts resolve on the host).
        self.scratch_root = scratch_root

    # -- launch -----------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> ContainerState:
        labels = managed_labels(spec, self.node, self.installation)
        kwargs = self._create_kwargs(spec, labels)
        # Two rounds: if the conflicting container disappears between our create and our
        # inspect (someone removed it), creating again is right.
        for _ in range(2):
            try:
                self._client.containers.create(**kwargs)
            except ImageNotFound as exc:
                raise LaunchError(
                    f"image {spec.image!r} is not on node {self.node}", code=IMAGE_NOT_FOUND
                ) from exc
            except APIError as exc:
                if exc.status_code == 400:  # the engine refused a setting (cpus, memory, mount…)
                    raise LaunchError(
                        f"the engine refused the container's settings: {_why(exc)}",
                        code=INVALID_RUNTIME_SETTINGS,
                    ) from exc
                if exc.status_code != 409:
                    raise LaunchError(f"create {spec.name!r} failed: {_why(exc)}") from exc
                existing = self.inspect(spec.name)
                if existing is None:
                    continue
                # Only a container we created for this very spec (same labels: same job and
                # attempt) is resumed; anything else under that name is someone else's.
                if existing.status == "created" and same_launch(existing.labels, labels):
                    return self._start(spec.name)
                raise AlreadyExists(existing) from exc
            return self._start(spec.name)
        raise LaunchError(f"container name {spec.name!r} keeps conflicting")

    def _create_kwargs(self, spec: LaunchSpec, labels: dict[str, str]) -> dict[str, Any]:
        for path in (spec.output_dir, spec.dataset_dir):
            if path is not None and _exposes_docker_socket(Path(path)):
                # The engine's socket inside a job container is root on the node.
                raise LaunchError(f"refusing to mount {path}: it contains the Docker socket")
        mounts = [Mount(target=str(spec.output_dir), source=str(spec.output_dir), type="bind")]
        if spec.dataset_dir is not None:
            mounts.append(
                Mount(
                    target=str(spec.dataset_dir),
                    source=str(spec.dataset_dir),
                    type="bind",
                    read_only=True,
                )
            )
        if self.scratch_root is not None:
            scratch = make_scratch(self.scratch_root, spec.name, spec.uid)
            mounts.append(Mount(target=sandbox.SCRATCH_MOUNT, source=str(scratch), type="bind"))
        env = dict(spec.env)  # the model's `env`: it never holds a name set below
        # The GPU lease decides, whatever the image's ENV says.
        env["NVIDIA_VISIBLE_DEVICES"] = nvidia_visible_devices(spec.gpu_ids)
        if spec.read_only_rootfs:
            # The image's home directory is on the read-only root.
            env["HOME"] = sandbox.CONTAINER_HOME
        # The uid has no passwd entry in most images: getpass.getuser() reads these first.
        env["USER"] = env["LOGNAME"] = sandbox.CONTAINER_USERNAME
        if self.scratch_root is not None:
            # Temporary files go to disk, not to the /tmp tmpfs that counts against memory.
            env["TMPDIR"] = env[sandbox.SCRATCH_ENV] = sandbox.SCRATCH_MOUNT
        kwargs: dict[str, Any] = {
            "image": spec.image,
            "command": list(spec.argv),
            "name": spec.name,
            "labels": labels,
            "environment": env,
            "mounts": mounts,
            "user": spec.user,
            "privileged": False,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": spec.pids_limit,
            "read_only": spec.read_only_rootfs,
            # "none": a loopback interface only. "bridge" (Docker's default network) only for
            # a model with `network: true`, which JOB_NETWORK_ALLOWED=1 permits.
            "network_mode": "bridge" if spec.network else "none",
            "network_disabled": not spec.network,
            # Docker's default /dev/shm (64 MB) kills PyTorch DataLoader workers.
            "shm_size": f"{sandbox.shm_mb(spec.shm_size_mb, spec.memory_mb)}m",
            # A tiny init as PID 1 forwards SIGTERM to the trainer and reaps zombies; without it
            # a trainer with no SIGTERM handler ignores `stop` and is only ever SIGKILLed.
            "init": True,
            "stop_signal": "SIGTERM",  # the trainer contract's signal, whatever the image says
            "log_config": LOG_CONFIG,
            "detach": True,
            # Not the worker's ~/.docker/config.json proxies: they would land in the env.
            "use_config_proxy": False,
        }
        if spec.entrypoint is not None:
            kwargs["entrypoint"] = list(spec.entrypoint)
        if spec.read_only_rootfs:
            kwargs["tmpfs"] = {"/tmp": TMPFS_OPTIONS}
        if spec.memory_mb is not None:
            kwargs["mem_limit"] = f"{spec.memory_mb}m"
            # Same value: no swap on top, so exceeding the limit is an OOM kill, not a crawl.
            kwargs["memswap_limit"] = f"{spec.memory_mb}m"
        if spec.cpus is not None:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.gpu_ids:
            kwargs["device_requests"] = [
                DeviceRequest(device_ids=[str(i) for i in spec.gpu_ids], capabilities=[["gpu"]])
            ]
        return kwargs

    def _start(self, name: str) -> ContainerState:
        try:
            # Starting a running container is a no-op for Docker (304), so two launchers racing
            # on a "created" container still give one process.
            self._api.start(name)
        except NotFound as exc:
            raise LaunchError(f"container {name!r} vanished before it started") from exc
        except APIError as exc:
            raise LaunchError(f"start {name!r} failed: {_why(exc)}", self.inspect(name)) from exc
        state = self.inspect(name)
        if state is None:
            raise LaunchError(f"container {name!r} vanished right after it started")
        return state

    def images(self) -> list[str] | None:
        """Every tagged image on the engine: any of them can be a job's image."""
        tags = {
            tag
            for image in self._api.images()
            for tag in image.get("RepoTags") or ()
            if tag and tag != "<none>:<none>"
        }
        return sorted(tags)

    # -- observe ----------------------------------------------------------------------------

    def inspect(self, name: str) -> ContainerState | None:
        try:
            attrs = self._api.inspect_container(name)
        except NotFound:
            return None
        # Docker also resolves a reference as an ID prefix; only an exact name counts here.
        if attrs.get("Name", "").lstrip("/") != name:
            return None
        return _state_from_attrs(attrs)

    def logs_tail(self, name: str, lines: int = 50) -> str:
        if lines <= 0:
            return ""
        try:
            raw = self._api.logs(name, stdout=True, stderr=True, tail=lines, timestamps=False)
        except NotFound:
            return ""
        return raw.decode("utf-8", errors="replace")

    def logs_since(self, name: str, cursor: str | None) -> LogRead:
        """The cursor keeps, per stream, Docker's timestamp of the last message taken (RFC 3339
        with a fixed nine-digit fraction, so timestamps compare as text) and how many
        messages carrying exactly that timestamp were taken: `stdout=<ts>,<n> stderr=<ts>,<n>`.

        Per stream, because Docker timestamps a message when its stream's copier reads it and
        writes the two streams to one log under a lock: a stderr message may be written just
        after a stdout message stamped later. One cursor for both would skip it as "already
        taken" when a read fell between the two writes (a failing trainer's last stderr line
        went missing that way). Within one stream, timestamps only grow.

        Each stream is read from whole seconds before its cursor (the daemon returns messages
        at or after `since`) and what the cursor covers is skipped, so none is taken twice and
        none is lost; the two are merged in timestamp order."""
        cursors = _parse_log_cursor(cursor)
        read: dict[str, list[tuple[str, bytes]]] = {}
        cut: list[str] = []  # the last stamp read of a stream that had more than the cap
        for stream in _STREAMS:
            messages, more = self._read_stream(name, stream, cursors[stream])
            read[stream] = messages
            if more:
                cut.append(messages[-1][0])
        # A stream cut at the cap is taken up to where it was cut, the other no further.
        horizon = min(cut) if cut else None
        merged = sorted(
            ((stamp, stream, payload) for stream in _STREAMS for stamp, payload in read[stream]),
            key=lambda message: message[0],
        )
        parts: list[bytes] = []
        size = 0
        for stamp, stream, payload in merged:
            if (horizon is not None and stamp > horizon) or size >= LOG_READ_MAX_BYTES:
                break
            parts.append(payload)
            size += len(payload)
            last, taken = cursors[stream]
            cursors[stream] = (stamp, taken + 1 if stamp == last else 1)
        return LogRead(b"".join(parts), _format_log_cursor(cursors))

    def _read_stream(
        self, name: str, stream: str, cursor: tuple[str, int]
    ) -> tuple[list[tuple[str, bytes]], bool]:
        """(stamp, payload) of one stream's messages after `cursor`, up to the read cap, and
        whether there were more."""
        last, skip = cursor
        since = parse_rfc3339(last) if last else None
        try:
            frames = self._api.logs(
                name,
                stdout=stream == "stdout",
                stderr=stream == "stderr",
                stream=True,
                follow=False,
                timestamps=True,
                since=int(since.timestamp()) if since is not None and since.timestamp() >= 1
                else None,
            )
        except NotFound:
            return [], False
        messages: list[tuple[str, bytes]] = []
        size = 0
        try:
            for frame in frames:  # one frame per message (a long line comes in several)
                stamp_bytes, _, payload = frame.partition(b" ")
                stamp = stamp_bytes.decode("ascii", "replace")
                if last and stamp < last:
                    continue
                if last and stamp == last and skip > 0:
                    skip -= 1
                    continue
                if size >= LOG_READ_MAX_BYTES:
                    return messages, True
                messages.append((stamp, payload))
                size += len(payload)
        except NotFound:
            pass  # removed while it was being read: what was read counts
        finally:
            frames.close()
        return messages, False

    def list_managed(self, node: str | None = None) -> list[ContainerState]:
        labels = _label_filter(ownership_labels(self.installation, node))
        states = []
        for summary in self._api.containers(all=True, filters={"label": labels}):
            try:
                attrs = self._api.inspect_container(summary["Id"])
            except NotFound:  # removed between the listing and the inspect
                continue
            states.append(_state_from_attrs(attrs))
        return states

    def wait_for_exit_events(self, since: datetime | None, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + max(timeout_s, 0.0)
        filters = {
            "type": "container",
            "event": "die",
            "label": _label_filter(ownership_labels(self.installation, self.node)),
        }
        now = utcnow()
        if since is not None:
            # History first: `until` = now makes the daemon answer at once.
            names = _names(
                self._api.events(since=_ts(since), until=_ts(now), filters=filters, decode=True)
            )
            if names:
                return names
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []
        # Then block for new events. `since` = the same `now` leaves no gap between the two
        # queries (an event at that instant may come twice; callers are idempotent). `until`
        # bounds the wait on the daemon side, so no client-side timeout thread is needed.
        stream = self._api.events(
            since=_ts(now),
            until=_ts(now + timedelta(seconds=remaining)),
            filters=filters,
            decode=True,
        )
        try:
            return _names(stream, first_only=True)
        finally:
            stream.close()

    # -- stop / remove ----------------------------------------------------------------------

    def stop(self, name: str, grace_s: float) -> ContainerState | None:
        state = self.inspect(name)
        if state is None:
            return None
        if state.status in ("running", "paused", "restarting"):
            # Logged: a stop ends a job, so which one and when is worth finding in the log.
            log.info("stopping container %s (grace %ss)", name, grace_s)
            try:
                # Docker sends the stop signal (SIGTERM), waits t seconds, then SIGKILLs; the
                # call returns once the container has ended. t is whole seconds: round up so
                # the trainer never gets less grace than asked.
                self._api.stop(name, timeout=max(0, math.ceil(grace_s)))
            except NotFound:
                return None
        return self.inspect(name)

    def remove(self, name: str) -> None:
        log.info("removing container %s", name)
        try:
            # force: a caller that removes has already recorded what it needs; v: drop the
            # anonymous volumes an image may declare, they would only leak disk.
            self._api.remove_container(name, force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: a removal is already in progress
                raise
        if self.scratch_root is not None:
            # After the container: nothing writes there any more.
            remove_scratch(self.scratch_root, name)


_STREAMS = ("stdout", "stderr")


def _parse_log_cursor(cursor: str | None) -> dict[str, tuple[str, int]]:
    """Stream -> (timestamp, count) of a cursor `logs_since` wrote; ("", 0), from the first
    byte, for a stream it cannot read. The cursor is stored beside the job's log, where the
    job can write (app/joblogs.py): a forged one may spoil its own log, never stop its end
    being recorded. A cursor of the older form `<timestamp> <count>` (one for both streams,
    left by a worker before this one) stands for both."""
    parsed = {stream: ("", 0) for stream in _STREAMS}
    text = cursor or ""
    if "=" not in text:
        stamp, _, count = text.partition(" ")
        return {stream: _stamp_and_count(stamp, count) for stream in _STREAMS}
    for part in text.split(" "):
        stream, _, value = part.partition("=")
        if stream in parsed:
            stamp, _, count = value.partition(",")
            parsed[stream] = _stamp_and_count(stamp, count)
    return parsed


def _stamp_and_count(stamp: str, count: str) -> tuple[str, int]:
    if not (_LOG_STAMP.fullmatch(stamp) and count.isdigit()):
        return ("", 0)
    try:
        parse_rfc3339(stamp)
    except ValueError:  # digits in the right places, but no date (month 13)
        return ("", 0)
    return (stamp, int(count))


def _format_log_cursor(cursors: dict[str, tuple[str, int]]) -> str:
    return " ".join(
        f"{stream}={stamp},{count}" for stream, (stamp, count) in cursors.items() if stamp
    )


# Docker's log timestamps: RFC 3339 in UTC with a fixed nine-digit fraction.
_LOG_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z")


def _state_from_attrs(attrs: dict[str, Any]) -> ContainerState:
    st = attrs.get("State") or {}
    status = st.get("Status", "")
    return ContainerState(
        name=attrs.get("Name", "").lstrip("/"),
        running=bool(st.get("Running")),
        status=status,
        exit_code=None if status in _NOT_ENDED else st.get("ExitCode"),
        oom_killed=bool(st.get("OOMKilled")),
        started_at=parse_rfc3339(st.get("StartedAt")),
        finished_at=parse_rfc3339(st.get("FinishedAt")),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        error=st.get("Error") or "",
    )


def _exposes_docker_socket(path: Path) -> bool:
    resolved = path.resolve()
    for sock in _DOCKER_SOCKETS:
        real = sock.resolve()  # /var/run is usually a symlink to /run
        if real == resolved or resolved in real.parents:
            return True
    return False


def _ts(dt: datetime) -> str:
    # docker-py would truncate a datetime to whole seconds; the daemon accepts
    # "seconds.nanoseconds", so keep sub-second precision.
    return f"{as_utc(dt).timestamp():.9f}"


def _names(events: Iterable[dict[str, Any]], first_only: bool = False) -> list[str]:
    names: list[str] = []
    for event in events:
        name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name")
        if name and name not in names:
            names.append(name)
            if first_only:
                break
    return names


def _why(exc: APIError) -> str:
    return str(exc.explanation or exc)


def _label_filter(labels: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in labels.items()]
