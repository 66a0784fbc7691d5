"""Container runtime without a container engine: each "container" is a local process group.

For development machines and CI runners with no Docker engine. Same contract as DockerRuntime,
with these differences (none of them isolates anything: this is not a sandbox):

- There is no image: the runtime runs `entrypoint + argv`, where `entrypoint` is the spec's, or
  else the one given to ProcessRuntime (it stands in for the image's ENTRYPOINT, e.g.
  [sys.executable, trainer.TRAIN_SCRIPT]). A leading "python"/"python3" becomes sys.executable.
  Use absolute paths: the working directory is `output_dir`.
- The environment is NOT the worker's: like a container, the process gets a small allow-list of
  the worker's variables (PATH, HOME, locale, TZ, TMPDIR, LD_LIBRARY_PATH) so that database
  URLs and tokens do not leak into user code, then `spec.env`, then CUDA_VISIBLE_DEVICES from
  `gpu_ids` ("" when none, so a CPU job never grabs a GPU) and NVIDIA_VISIBLE_DEVICES as the
  Docker runtime sets it ("void" when none).
- `memory_mb` is RLIMIT_AS (address space, not resident memory), and is NOT applied to GPU jobs:
  CUDA reserves huge virtual ranges and would fail to initialise. `cpus`, `pids_limit`, `user`,
  `network`, `read_only_rootfs`, `shm_size_mb` (there is no private /dev/shm: the host's is
  used) and the dataset's read-only-ness are not enforced.
- The scratch folder (`scratch_root/<name>`, when given) is not mounted anywhere: the process
  gets its host path in TMPDIR and TRAINYARD_SCRATCH_DIR. It is removed with the record.
- OOM: an allocation over RLIMIT_AS fails inside the process (Python: MemoryError). The runtime
  reports oom_killed=True when memory_mb was applied, the exit code is non-zero and the log tail
  shows MemoryError / std::bad_alloc / "Cannot allocate memory". A SIGKILL we did not send
  (possibly the kernel's OOM killer) is reported as exit 137, oom_killed=False: nothing tells
  us who sent it.
- Exit codes: death by signal N is 128+N, as Docker reports it. -1 means "exited, code unknown":
  the process ended while no waiter was alive to collect its status (see below).
- An exec failure (program not found: 127, not executable: 126) ends the launch with
  LaunchError; the record stays "exited" with `error` set (Docker leaves such a container in
  "created" instead).

State lives under `state_dir`: `<name>.json` (the record, replaced atomically), `<name>.log`
(stdout+stderr) and `.lock` (one flock serialising record changes across processes).

Why a separate waiter process: the training process must outlive the worker (a Celery pool child
is recycled, a worker restarts on deploy), and its exit status can only be collected by its
parent. So `launch` starts a detached waiter (`python -m workers.runtime.process _waiter`,
double-forked so the worker has no zombie to reap); the waiter starts the process in a new
session (its own process group, which `stop` signals), records pid + start-time token, waits,
kills stragglers left in the group (a container's processes all die with its PID 1) and records
the exit code. Whoever inspects later checks /proc/<pid> and the token (boot id + start time,
so a reused pid is not mistaken for the job).

A process that dies while its waiter is dead too (e.g. the machine rebooted) is "exited" with
exit_code -1 and finished_at = the time we noticed.

Crash windows: launch writes the record ("created") before anything runs and the waiter starts
the process and records its pid under the lock, so duplicate launches never start two
processes. If the waiter itself is killed between starting the process and writing its pid
(microseconds), the record stays "created" and a later launch would start a second process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from app.domain import sandbox
from app.domain.completion import CONTAINER_START_FAILED, DATASET_NOT_FOUND
from app.domain.timefmt import as_utc, utcnow
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
    remove_scratch,
    same_launch,
    scratch_path,
)

_ENV_PASSTHROUGH = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "LD_LIBRARY_PATH"}
)
_PYTHON_NAMES = frozenset({"python", "python3"})
_OOM_MARKERS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory")
_POLL_S = 0.05
# How long to wait for a live waiter to record an exit we can already see in /proc.
_SETTLE_S = 3.0
# After SIGKILL a process is gone within milliseconds unless stuck in the kernel (D state).
_KILL_WAIT_S = 5.0
# The repository root, so the waiter can run `-m workers.runtime.process` from any cwd.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class ProcessRuntime:
    def __init__(
        self,
        state_dir: Path,
        node: str,
        *,
        installation: str,
        entrypoint: Sequence[str] | None = None,
        start_timeout_s: float = 15.0,
        scratch_root: Path | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.scratch_root = scratch_root
        self.node = node
        self.installation = installation
        self._entrypoint = list(entrypoint or [])
        self._start_timeout_s = start_timeout_s
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- launch -----------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> ContainerState:
        labels = managed_labels(spec, self.node, self.installation)
        command = self._command(spec)
        for label, path in (("output_dir", spec.output_dir), ("dataset_dir", spec.dataset_dir)):
            # Docker refuses a bind mount whose source is missing; so do we, before any record.
            if path is not None and not Path(path).is_dir():
                code = DATASET_NOT_FOUND if label == "dataset_dir" else CONTAINER_START_FAILED
                raise LaunchError(f"{label} {path} does not exist", code=code)
        path = _record_path(self.state_dir, spec.name)
        existing: dict[str, Any] | None = None
        with _locked(self.state_dir):
            rec = _read(path)
            if rec is not None and not (
                rec["status"] == "created" and same_launch(rec["labels"], labels)
            ):
                existing = rec
            else:
                if rec is None:
                    rec = {
                        "name": spec.name,
                        "labels": labels,
                        "status": "created",
                        "command": command,
                        "created_at": utcnow().isoformat(),
                    }
                    _write(path, rec)
                if self.scratch_root is not None:
                    make_scratch(self.scratch_root, spec.name, spec.uid)
                # A "created" record left by a crashed launch gets a waiter too; waiters check
                # the status under the lock, so at most one of them starts the process.
                self._spawn_waiter(spec, command)
        if existing is not None:
            raise AlreadyExists(self._state(existing))
        return self._await_start(spec.name)

    def _command(self, spec: LaunchSpec) -> list[str]:
        command = list(spec.entrypoint if spec.entrypoint is not None else self._entrypoint)
        command += spec.argv
        if not command:
            raise LaunchError(f"{spec.name!r}: no entrypoint and no argv, nothing to run")
        if command[0] in _PYTHON_NAMES:
            # The worker's own interpreter: it exists on this machine, "python3" on PATH may not
            # be the one with the right packages.
            command[0] = sys.executable
        return command

    def _env(self, spec: LaunchSpec) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _ENV_PASSTHROUGH or k.startswith("LC_")}
        # Unbuffered, so logs_tail shows a Python trainer's last words even when it is killed.
        env["PYTHONUNBUFFERED"] = "1"
        env.update(spec.env)
        # The GPU lease decides, whatever spec.env says.
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in spec.gpu_ids)
        env["NVIDIA_VISIBLE_DEVICES"] = nvidia_visible_devices(spec.gpu_ids)  # as in Docker
        if self.scratch_root is not None:
            scratch = str(scratch_path(self.scratch_root, spec.name))
            env["TMPDIR"] = env[sandbox.SCRATCH_ENV] = scratch
        return env

    def _spawn_waiter(self, spec: LaunchSpec, command: list[str]) -> None:
        payload = {
            "state_dir": str(self.state_dir),
            "name": spec.name,
            "command": command,
            "env": self._env(spec),
            "cwd": str(spec.output_dir),
            "memory_mb": spec.memory_mb if not spec.gpu_ids else None,
        }
        waiter_env = dict(os.environ)
        waiter_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        with open(_log_path(self.state_dir, spec.name), "ab") as log:
            # stdout/stderr = the job's log: the process inherits them, and a waiter that
            # crashes leaves its traceback where logs_tail finds it.
            proc = subprocess.Popen(
                [sys.executable, "-m", "workers.runtime.process", "_waiter"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                cwd="/",
                env=waiter_env,
                start_new_session=True,
            )
        try:
            # Returns when the intermediate process has forked the real waiter and exited.
            proc.communicate(json.dumps(payload).encode(), timeout=self._start_timeout_s)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait()
            raise LaunchError(f"{spec.name!r}: the waiter did not detach") from exc
        if proc.returncode != 0:
            raise LaunchError(f"{spec.name!r}: the waiter failed ({proc.returncode}), see its log")

    def _await_start(self, name: str) -> ContainerState:
        path = _record_path(self.state_dir, name)
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            rec = _read(path)
            if rec is None:
                raise LaunchError(f"{name!r} was removed while it was being launched")
            if rec["status"] != "created":
                state = self._state(rec)
                if rec.get("error"):
                    raise LaunchError(rec["error"], state)
                return state
            if time.monotonic() > deadline:
                raise LaunchError(f"{name!r} did not start in {self._start_timeout_s}s", None)
            time.sleep(_POLL_S)

    # -- observe ----------------------------------------------------------------------------

    def inspect(self, name: str) -> ContainerState | None:
        rec = _read(_record_path(self.state_dir, name))
        return None if rec is None else self._state(rec)

    def images(self) -> list[str] | None:
        return None  # no images: every job runs this node's entrypoint, whatever its image

    def logs_tail(self, name: str, lines: int = 50) -> str:
        return _tail(_log_path(self.state_dir, name), lines)

    def logs_since(self, name: str, cursor: str | None) -> LogRead:
        # The cursor is a byte offset in the process's log file. It is stored where the job
        # can write (app/joblogs.py): anything but a plain offset reads from the start.
        offset = int(cursor) if cursor and _OFFSET.fullmatch(cursor) else 0
        try:
            handle = _log_path(self.state_dir, name).open("rb")
        except FileNotFoundError:
            return LogRead(b"", str(offset))
        with handle:
            handle.seek(offset)
            data = handle.read(LOG_READ_MAX_BYTES)
        return LogRead(data, str(offset + len(data)))

    def list_managed(self, node: str | None = None) -> list[ContainerState]:
        ours = ownership_labels(self.installation, node)
        states = []
        for path in sorted(self.state_dir.glob("*.json")):
            rec = _read(path)
            if rec is not None and same_launch(rec.get("labels") or {}, ours):
                states.append(self._state(rec))
        return states

    def wait_for_exit_events(self, since: datetime | None, timeout_s: float) -> list[str]:
        # No event source: poll the records. finished_at >= since gives the same at-least-once
        # window semantics as Docker's `since`.
        floor = as_utc(since) if since is not None else utcnow()
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while True:
            names = [
                s.name
                for s in self.list_managed(self.node)
                if s.ended and s.finished_at is not None and s.finished_at >= floor
            ]
            remaining = deadline - time.monotonic()
            if names or remaining <= 0:
                return names
            time.sleep(min(0.2, remaining))

    def _state(self, rec: dict[str, Any]) -> ContainerState:
        if rec["status"] == "running" and not _alive(rec.get("pid"), rec.get("token")):
            rec = self._settle(rec)
        return _state_from_record(rec)

    def _settle(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The process is gone but the record says running: let a live waiter record the exit;
        without one, nobody can ever know the code, so record "exited, unknown" (-1)."""
        path = _record_path(self.state_dir, rec["name"])
        if _alive(rec.get("waiter_pid"), rec.get("waiter_token")):
            deadline = time.monotonic() + _SETTLE_S
            while time.monotonic() < deadline:
                fresh = _read(path)
                if fresh is None or fresh.get("status") != "running":
                    return fresh if fresh is not None else rec
                time.sleep(_POLL_S)
        with _locked(self.state_dir):
            fresh = _read(path)
            if fresh is None or fresh.get("status") != "running" or fresh.get("pid") != rec["pid"]:
                return fresh if fresh is not None else rec
            fresh.update(
                status="exited",
                exit_code=-1,
                finished_at=utcnow().isoformat(),
                error="process ended while no waiter was watching it: exit code unknown",
            )
            _write(path, fresh)
            return fresh

    # -- stop / remove ----------------------------------------------------------------------

    def stop(self, name: str, grace_s: float) -> ContainerState | None:
        path = _record_path(self.state_dir, name)
        rec = _read(path)
        if rec is None:
            return None
        if rec["status"] == "running" and _alive(rec["pid"], rec["token"]):
            # Remember that the stop was ours (for the record; it also tells a later reader
            # that a 137 here is not an OOM kill).
            with _locked(self.state_dir):
                fresh = _read(path)
                if fresh is not None:
                    fresh["stop_requested_at"] = utcnow().isoformat()
                    _write(path, fresh)
            _signal_group(rec, signal.SIGTERM)
            if not _wait_dead(rec, grace_s):
                _signal_group(rec, signal.SIGKILL)
                _wait_dead(rec, _KILL_WAIT_S)
        return self.inspect(name)

    def remove(self, name: str) -> None:
        rec = _read(_record_path(self.state_dir, name))
        if rec is not None and rec["status"] == "running":
            # Like `docker rm -f`: the caller recorded what it needed already.
            _signal_group(rec, signal.SIGKILL)
            _wait_dead(rec, _KILL_WAIT_S)
        with _locked(self.state_dir):
            _record_path(self.state_dir, name).unlink(missing_ok=True)
            _log_path(self.state_dir, name).unlink(missing_ok=True)
        if self.scratch_root is not None:
            remove_scratch(self.scratch_root, name)


#: A `logs_since` cursor: a byte offset (19 digits: any file size there is).
_OFFSET = re.compile(r"[0-9]{1,19}")

# -- records ------------------------------------------------------------------------------------


def _record_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def _log_path(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.log"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _write(path: Path, rec: dict[str, Any]) -> None:
    # Write-then-rename: a reader (without the lock) sees the old or the new record, never half.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, sort_keys=True))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    # flock is per open file description and dies with its process, so a crashed holder never
    # wedges the others. Not re-entrant: never take it twice in one call chain.
    fd = os.open(state_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _state_from_record(rec: dict[str, Any]) -> ContainerState:
    status = rec["status"]
    return ContainerState(
        name=rec["name"],
        running=status == "running",
        status=status,
        exit_code=rec.get("exit_code") if status == "exited" else None,
        oom_killed=bool(rec.get("oom_killed")),
        started_at=_parse_time(rec.get("started_at")),
        finished_at=_parse_time(rec.get("finished_at")),
        labels=dict(rec.get("labels") or {}),
        error=rec.get("error") or "",
    )


def _tail(path: Path, lines: int) -> str:
    if lines <= 0:
        return ""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return ""
    with f:
        # Read backwards in blocks: a training log can be gigabytes.
        pos = f.seek(0, os.SEEK_END)
        data = b""
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    return b"".join(data.splitlines(keepends=True)[-lines:]).decode("utf-8", errors="replace")


# -- processes ----------------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


_BOOT_ID = _boot_id()


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, identity token) of a live pid, or None. The token is boot id + start time
    in clock ticks: a pid reused by another process (or after a reboot) has a different one."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], f"{_BOOT_ID}:{fields[19]}"


def _alive(pid: int | None, token: str | None) -> bool:
    if pid is None or token is None:
        return False
    stat = _proc_stat(pid)
    # A zombie ("Z") has ended; only its exit status is left for its parent to collect.
    return stat is not None and stat[1] == token and stat[0] != "Z"


def _signal_group(rec: dict[str, Any], sig: signal.Signals) -> None:
    # Only while the leader is provably ours: once it is gone its pid (= the group id) may be
    # reused, and the waiter already cleans up what was left in the group.
    if not _alive(rec.get("pid"), rec.get("token")):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(rec["pgid"], sig)


def _wait_dead(rec: dict[str, Any], timeout_s: float) -> bool:
    deadline = time.monotonic() + max(timeout_s, 0.0)
    while _alive(rec.get("pid"), rec.get("token")):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _limits(memory_mb: int | None) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        # No core files: a dump of a multi-gigabyte trainer would fill the disk.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_mb is not None:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


# -- the waiter (runs as `python -m workers.runtime.process _waiter`) ---------------------------


def _waiter_main() -> int:
    payload = json.loads(sys.stdin.read())
    if os.fork() != 0:
        # The launcher waits for this intermediate process only; the real waiter below is
        # reparented to init, which reaps it, so the worker never accumulates zombies.
        os._exit(0)
    state_dir = Path(payload["state_dir"])
    path = _record_path(state_dir, payload["name"])
    memory_mb = payload["memory_mb"]
    with _locked(state_dir):
        rec = _read(path)
        if rec is None or rec["status"] != "created":
            return 0  # another waiter started it, or it was removed
        try:
            child = subprocess.Popen(
                payload["command"],
                cwd=payload["cwd"],
                env=payload["env"],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() signals all of it
                preexec_fn=_limits(memory_mb),  # safe: the waiter has a single thread
            )
        except OSError as exc:
            rec.update(
                status="exited",
                exit_code=127 if exc.errno == errno.ENOENT else 126,
                finished_at=utcnow().isoformat(),
                error=f"cannot start {payload['command'][0]!r}: {exc}",
            )
            _write(path, rec)
            return 0
        child_stat = _proc_stat(child.pid)
        own_stat = _proc_stat(os.getpid())
        rec.update(
            status="running",
            pid=child.pid,
            pgid=child.pid,
            token=child_stat[1] if child_stat else None,
            waiter_pid=os.getpid(),
            waiter_token=own_stat[1] if own_stat else None,
            started_at=utcnow().isoformat(),
        )
        _write(path, rec)
    # Wait without reaping: while the leader is a zombie its pid, hence the group id, cannot be
    # reused, so killing the stragglers left in the group hits only this job's processes.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    returncode = child.wait()
    exit_code = 128 - returncode if returncode < 0 else returncode
    finished_at = utcnow().isoformat()
    oom = (
        memory_mb is not None
        and exit_code != 0
        and any(m in _tail(_log_path(state_dir, payload["name"]), 20) for m in _OOM_MARKERS)
    )
    with _locked(state_dir):
        rec = _read(path)
        if rec is None or rec.get("pid") != child.pid:
            return 0  # removed meanwhile
        rec.update(status="exited", exit_code=exit_code, finished_at=finished_at, oom_killed=oom)
        rec.pop("error", None)  # we know better than a reader who gave up on us
        _write(path, rec)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["_waiter"]:
        sys.exit("usage: python -m workers.runtime.process _waiter  (internal)")
    sys.exit(_waiter_main())
