"""The one gate to a job's files: every host-side access to OUTPUT_ROOT/<uuid>/… goes here.

A training container is untrusted code and writes where the API and the workers read
(docs/security.md, "Job outputs"). So beneath OUTPUT_ROOT (trusted: the operator's setting):

- no symbolic link is followed in any component (`openat2` with RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS where the kernel has it, else a walk that opens each folder with
  O_NOFOLLOW | O_DIRECTORY relative to the one before); checking a path and then using it is a
  race (CVE-2018-15664), so every use starts from a descriptor, never from a path string;
- only regular files are read: opened with O_NONBLOCK (a FIFO cannot block the opener), then
  `fstat` refuses FIFOs, devices, sockets and folders before a byte is read;
- every kind of file has a size cap (settings `JOB_FILE_MAX_*`);
- folders are created with `mkdir(dir_fd=…)`, given to the container's user with `fchown` /
  `fchmod` on a descriptor, and moved with `rename(src_dir_fd=…, dst_dir_fd=…)`.

Errors are `JobFileError`: the path relative to the model folder and why (a link, a FIFO, …);
never the host's absolute path, never the file's content.

Paths are `JobPath`s: `job_root(settings)` is OUTPUT_ROOT, and app.domain.layout builds on it
(`layout.train_dir(job_root(settings), uuid)`) exactly as on a `Path`.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import secrets
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from app.config import Settings

_log = logging.getLogger(__name__)

MiB = 1 << 20
_LINE_BLOCK = MiB  # bounded_lines reads this much at a time


class FileKind(Enum):
    """What a file is for; each kind has its own size cap (`Limits`)."""

    METRICS_CSV = "metrics_csv"  # train.csv, val.csv, test/test.csv
    JSON = "json"  # progress.json, test/summary.json
    SPLIT_LIST = "split_list"  # tmp/{train,val,test}.txt
    RESULTS_ZIP = "results_zip"  # test/results_epoch_<E>.zip (served as a download)
    JOB_LOG = "job_log"  # logs/job-<id>/<offset>.log: a segment of a job's stored log


@dataclass(frozen=True)
class Limits:
    """Size caps in bytes (README: JOB_FILE_MAX_CSV_MB, _JSON_MB, _SPLIT_LIST_MB, _ZIP_MB;
    JOB_LOG_MAX_MB: all of a job's stored log together, app/joblogs.py)."""

    metrics_csv: int = 2048 * MiB
    json: int = 5 * MiB
    split_list: int = 256 * MiB
    results_zip: int = 8192 * MiB
    job_log: int = 64 * MiB

    def of(self, kind: FileKind) -> int:
        return int(getattr(self, kind.value))


class Reason(Enum):
    MISSING = "is missing"
    LINK = "is a symbolic link (links are not followed)"
    FIFO = "is a FIFO, not a regular file"
    DIRECTORY = "is a folder where a file belongs"
    NOT_DIRECTORY = "is not a folder"
    SPECIAL = "is a device or socket, not a regular file"
    TOO_LARGE = "is larger than the cap"
    BAD_NAME = "is not a plain name beneath the model folder"
    UNREADABLE = "cannot be used"


class JobFileError(OSError):
    """A job file the gate refused: `path` is relative to the model folder. An OSError, so
    a caller that handles failed file access handles this too."""

    def __init__(self, path: str, reason: Reason, detail: str = "") -> None:
        self.path = path
        self.reason = reason
        self.why = reason.value + (f" ({detail})" if detail else "")
        super().__init__(f"{path} {self.why}")


@dataclass(frozen=True)
class JobPath:
    """A path beneath OUTPUT_ROOT: `root` (trusted) and the names below it (untrusted)."""

    root: Path
    parts: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    hidden: int = 1  # leading parts messages leave out: under OUTPUT_ROOT, the model uuid

    def __truediv__(self, name: object) -> JobPath:
        parts = [p for p in str(name).split("/") if p]
        for part in parts:
            if part in (".", "..") or "\0" in part:
                raise ValueError(f"{name!r} is not a plain name")
        return JobPath(self.root, (*self.parts, *parts), self.limits, self.hidden)

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""

    @property
    def parent(self) -> JobPath:
        return JobPath(self.root, self.parts[:-1], self.limits, self.hidden)

    @property
    def host_path(self) -> Path:
        """The host path: for container mounts and operator logs, never for access."""
        return self.root.joinpath(*self.parts)

    def shown(self, depth: int | None = None) -> str:
        """The first `depth` parts (all by default) as messages show them: relative to the
        model folder."""
        parts = self.parts if depth is None else self.parts[:depth]
        return "/".join(parts[self.hidden :]) or "."

    def __str__(self) -> str:
        return self.shown()


def job_root(settings: Settings) -> JobPath:
    """OUTPUT_ROOT as a JobPath, with the settings' size caps."""
    return JobPath(Path(settings.output_root), (), settings.job_file_limits)


def beneath(folder: Path | JobPath, limits: Limits | None = None) -> JobPath:
    """A JobPath for `folder`; a plain Path (tests, tools) is itself the trusted root."""
    if isinstance(folder, JobPath):
        return folder
    return JobPath(Path(folder), (), limits or Limits(), hidden=0)


# --- resolving beneath the root ---------------------------------------------------------------

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_openat2_works: bool | None = None if _SYS_OPENAT2 is not None else False


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_EAGAIN_TRIES = 16


def _openat2(dir_fd: int, relative: str, flags: int) -> int | None:
    """openat2(2); None when the kernel (or a seccomp filter) does not offer it."""
    global _openat2_works
    if _SYS_OPENAT2 is None:
        return None
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
    err = errno.EAGAIN
    for _ in range(_EAGAIN_TRIES):  # EAGAIN: a rename somewhere raced the lookup; try again
        fd = _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(relative)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            _openat2_works = True
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            break
    if err in (errno.ENOSYS, errno.EPERM) and not _openat2_works:
        _openat2_works = False
        return None
    raise OSError(err, os.strerror(err))


def _open_root(path: JobPath) -> int:
    try:
        return os.open(path.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise JobFileError(str(path), Reason.MISSING) from None
    except OSError as exc:
        raise JobFileError(str(path), Reason.UNREADABLE, exc.strerror or "") from None


def _open_beneath(path: JobPath, flags: int) -> int:
    """A descriptor for `path` opened with `flags` | O_NOFOLLOW, no link followed on the way."""
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    root = _open_root(path)
    try:
        if not path.parts:
            return os.dup(root)
        try:
            if _openat2_works is not False:
                fd = _openat2(root, "/".join(path.parts), flags)
                if fd is not None:
                    return fd
            return _walk(root, path.parts, flags)
        except OSError as exc:
            raise _explain(root, path, exc) from None
    finally:
        os.close(root)


def _walk(root: int, parts: tuple[str, ...], flags: int) -> int:
    """The fallback: each folder opened with O_NOFOLLOW | O_DIRECTORY relative to the last."""
    current = os.dup(root)
    try:
        for part in parts[:-1]:
            folder = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=current)  # fmt: skip
            os.close(current)
            current = folder
        return os.open(parts[-1], flags, dir_fd=current)
    finally:
        os.close(current)


def _explain(root: int, path: JobPath, exc: OSError) -> JobFileError:
    """Name the component that stopped the resolution and why (lstat beneath, no follow)."""
    current = os.dup(root)
    try:
        for depth, part in enumerate(path.parts, start=1):
            shown = path.shown(depth)
            try:
                info = os.stat(part, dir_fd=current, follow_symlinks=False)
            except FileNotFoundError:
                return JobFileError(shown, Reason.MISSING)
            except OSError as inner:
                return JobFileError(shown, Reason.UNREADABLE, inner.strerror or "")
            if stat.S_ISLNK(info.st_mode):
                return JobFileError(shown, Reason.LINK)
            if depth == len(path.parts):
                if stat.S_ISFIFO(info.st_mode):
                    return JobFileError(shown, Reason.FIFO)
                if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                    return JobFileError(shown, Reason.SPECIAL)  # e.g. a socket: ENXIO
                break
            if not stat.S_ISDIR(info.st_mode):
                return JobFileError(shown, Reason.NOT_DIRECTORY)
            folder = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=current)  # fmt: skip
            os.close(current)
            current = folder
    except OSError as inner:
        return JobFileError(str(path), Reason.UNREADABLE, inner.strerror or "")
    finally:
        os.close(current)
    if exc.errno == errno.ENOTDIR:
        return JobFileError(str(path), Reason.NOT_DIRECTORY)
    if exc.errno == errno.EXDEV:
        return JobFileError(str(path), Reason.BAD_NAME)
    return JobFileError(str(path), Reason.UNREADABLE, exc.strerror or "")


def _refuse_unless_regular(path: JobPath, info: os.stat_result) -> None:
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        raise JobFileError(str(path), Reason.LINK)
    if stat.S_ISFIFO(mode):
        raise JobFileError(str(path), Reason.FIFO)
    if stat.S_ISDIR(mode):
        raise JobFileError(str(path), Reason.DIRECTORY)
    raise JobFileError(str(path), Reason.SPECIAL)


def _open_folder(path: JobPath) -> int:
    return _open_beneath(path, os.O_RDONLY | os.O_DIRECTORY)


# --- reading ----------------------------------------------------------------------------------


def open_file(path: JobPath, kind: FileKind) -> BinaryIO:
    """A regular file beneath the root, opened for binary reading (the caller closes it).

    Refused (JobFileError): missing, a link anywhere on the way, a FIFO, a device, a folder,
    larger than the kind's cap. A file that grows after this check is the reader's to bound."""
    if not path.parts:
        raise JobFileError(str(path), Reason.DIRECTORY)
    fd = _open_beneath(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        _refuse_unless_regular(path, info)
        cap = path.limits.of(kind)
        if info.st_size > cap:
            raise JobFileError(str(path), Reason.TOO_LARGE, f"{info.st_size} > {cap} bytes")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_file(path: JobPath, kind: FileKind) -> bytes:
    """The whole file, at most the kind's cap (a file that grew past it is refused)."""
    cap = path.limits.of(kind)
    with open_file(path, kind) as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise JobFileError(str(path), Reason.TOO_LARGE, f"> {cap} bytes")
    return data


def bounded_lines(handle: BinaryIO, max_line: int) -> Iterator[bytes]:
    """The lines of `handle` from where it is (each with its newline, the last maybe without);
    a line longer than `max_line` bytes (newline not counted) raises LineTooLong instead of
    being held in memory. Read in blocks: about as fast as iterating the file."""
    number, pending = 0, b""
    while block := handle.read(_LINE_BLOCK):
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        too_long = None
        if lines and max(map(len, lines)) > max_line:
            too_long = next(i for i, line in enumerate(lines) if len(line) > max_line)
            del lines[too_long:]
        elif len(pending) > max_line:
            too_long = len(lines)
        for line in lines:  # the lines before a long one come first, as a reader expects
            yield line + b"\n"
        if too_long is not None:
            raise LineTooLong(number + too_long + 1, max_line)
        number += len(lines)
    if pending:
        yield pending


class LineTooLong(ValueError):
    def __init__(self, line: int, limit: int) -> None:
        self.line = line
        super().__init__(f"line {line} is longer than {limit} bytes")


# --- what is there ----------------------------------------------------------------------------


class Entry(Enum):
    FILE = "file"
    DIRECTORY = "directory"
    LINK = "link"
    FIFO = "fifo"
    OTHER = "other"  # device, socket


def _entry_of(mode: int) -> Entry:
    if stat.S_ISREG(mode):
        return Entry.FILE
    if stat.S_ISDIR(mode):
        return Entry.DIRECTORY
    if stat.S_ISLNK(mode):
        return Entry.LINK
    if stat.S_ISFIFO(mode):
        return Entry.FIFO
    return Entry.OTHER


def entry(path: JobPath) -> Entry | None:
    """What the last component is (not followed); None when it is missing. A link or a
    non-folder among the components before it raises JobFileError."""
    if not path.parts:
        return Entry.DIRECTORY
    try:
        folder = _open_folder(path.parent)
    except JobFileError as exc:
        if exc.reason is Reason.MISSING:
            return None
        raise
    try:
        info = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JobFileError(str(path), Reason.UNREADABLE, exc.strerror or "") from None
    finally:
        os.close(folder)
    return _entry_of(info.st_mode)


_REFUSAL = {Entry.LINK: Reason.LINK, Entry.FIFO: Reason.FIFO, Entry.OTHER: Reason.SPECIAL}


def has_file(path: JobPath) -> bool:
    """True for a regular file, False when missing; anything else is refused."""
    return _is(path, Entry.FILE)


def has_dir(path: JobPath) -> bool:
    """True for a folder, False when missing; anything else is refused."""
    return _is(path, Entry.DIRECTORY)


def _is(path: JobPath, kind: Entry) -> bool:
    found = entry(path)
    if found is None:
        return False
    if found is kind:
        return True
    if found is Entry.DIRECTORY:
        raise JobFileError(str(path), Reason.DIRECTORY)
    if found is Entry.FILE:
        raise JobFileError(str(path), Reason.NOT_DIRECTORY)
    raise JobFileError(str(path), _REFUSAL[found])


def list_dir(path: JobPath) -> dict[str, Entry]:
    """Name -> what it is (links not followed) of a folder's entries."""
    fd = _open_folder(path)
    try:
        with os.scandir(fd) as entries:
            return {
                item.name: _entry_of(item.stat(follow_symlinks=False).st_mode) for item in entries
            }
    finally:
        os.close(fd)


def disk_usage(path: JobPath) -> int:
    """Bytes the files beneath the folder `path` take on disk (allocated blocks, as `du`);
    0 when it is missing. Used on a tree a job is writing (its scratch): every folder is
    opened beneath the root without following a link, so one swapped for a link while it is
    walked is skipped, never descended into; entries are `lstat`ed relative to their folder's
    descriptor. A folder that cannot be opened counts as empty (as does one whose path is
    longer than the kernel resolves: PATH_MAX)."""
    total = 0
    folders = [path]
    while folders:
        folder = folders.pop()
        try:
            fd = _open_folder(folder)
        except JobFileError:
            continue
        try:
            with os.scandir(fd) as entries:
                for item in entries:
                    try:
                        info = item.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        folders.append(folder / item.name)
        except OSError:
            pass  # unreadable (or gone) while listed: what was counted stays
        finally:
            os.close(fd)
    return total


# --- writing ----------------------------------------------------------------------------------


def make_dirs(path: JobPath, owner: int | None = None, mode: int | None = None) -> None:
    """Create `path` and any missing folder above it beneath the root (links refused); then
    give the last one to `owner` (fchown) or `mode` (fchmod), on its descriptor. The root
    (trusted: OUTPUT_ROOT) is created when missing, as on a fresh installation."""
    os.makedirs(path.root, exist_ok=True)
    current = _open_root(path)
    try:
        for depth, part in enumerate(path.parts, start=1):
            try:
                os.mkdir(part, 0o755, dir_fd=current)
            except FileExistsError:
                pass
            except OSError as exc:
                why = exc.strerror or ""
                raise JobFileError(path.shown(depth), Reason.UNREADABLE, why) from None
            try:
                folder = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 dir_fd=current)  # fmt: skip
            except OSError as exc:
                raise _refused_folder(current, part, path.shown(depth), exc) from None
            os.close(current)
            current = folder
        if owner is not None:
            os.fchown(current, owner, owner)
        if mode is not None:
            os.fchmod(current, mode)
    finally:
        os.close(current)


def _refused_folder(parent: int, name: str, shown: str, exc: OSError) -> JobFileError:
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return JobFileError(shown, Reason.UNREADABLE, exc.strerror or "")
    if stat.S_ISLNK(info.st_mode):
        return JobFileError(shown, Reason.LINK)
    if not stat.S_ISDIR(info.st_mode):
        return JobFileError(shown, Reason.NOT_DIRECTORY)
    return JobFileError(shown, Reason.UNREADABLE, exc.strerror or "")


def rename(source: JobPath, target: JobPath) -> None:
    """Move `source` (whatever it is: a link is moved, not followed) to `target`."""
    src_dir = _open_folder(source.parent)
    try:
        dst_dir = _open_folder(target.parent)
        try:
            os.rename(source.name, target.name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        except OSError as exc:
            raise JobFileError(str(source), Reason.UNREADABLE, exc.strerror or "") from None
        finally:
            os.close(dst_dir)
    finally:
        os.close(src_dir)


def open_append(path: JobPath, mode: int = 0o644) -> BinaryIO:
    """A regular file beneath the root opened for appending, created when missing (the caller
    closes it). A link, FIFO, device or folder there is refused, as `open_file` refuses it."""
    if not path.parts:
        raise JobFileError(str(path), Reason.DIRECTORY)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY
    folder = _open_folder(path.parent)
    try:
        fd = os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=folder)
    except OSError as exc:
        raise _refused_file(folder, path, exc) from None
    finally:
        os.close(folder)
    try:
        _refuse_unless_regular(path, os.fstat(fd))
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def _refused_file(folder: int, path: JobPath, exc: OSError) -> JobFileError:
    try:
        info = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return JobFileError(str(path), Reason.UNREADABLE, exc.strerror or "")
    if stat.S_ISREG(info.st_mode):
        return JobFileError(str(path), Reason.UNREADABLE, exc.strerror or "")
    try:
        _refuse_unless_regular(path, info)
    except JobFileError as refused:
        return refused
    return JobFileError(str(path), Reason.UNREADABLE, exc.strerror or "")


def remove_file(path: JobPath) -> None:
    """Unlink `path` (a link is removed, not followed); no error when it is already gone."""
    folder = _open_folder(path.parent)
    try:
        os.unlink(path.name, dir_fd=folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _change_failed(path, exc) from None
    finally:
        os.close(folder)


def write_file(path: JobPath, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a new file beside `path`, then rename it over `path` (a link or file
    there is replaced, never followed; a folder there is refused)."""
    folder = _open_folder(path.parent)
    temp = f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=folder)  # fmt: skip
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), mode)
            os.replace(temp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=folder)
            raise
    except OSError as exc:
        raise _change_failed(path, exc) from None
    finally:
        os.close(folder)


def remove_tree(path: JobPath) -> None:
    """Delete the folder `path` and everything in it (no error when it is missing). A link
    in it is removed, never followed (`shutil.rmtree`'s descriptor walk). A job may have
    left folders without write permission: each is opened up on its descriptor (fchmod,
    no link followed) and the removal tried again; failing that, `rm -rf` (it walks any
    depth and follows no link); what still stays is logged, never raised: removing a
    container must not depend on what its job left."""
    if not path.parts:
        raise JobFileError(str(path), Reason.BAD_NAME)
    found = entry(path)
    if found is None:
        return
    if found is not Entry.DIRECTORY:
        remove_file(path)
        return
    try:
        shutil.rmtree(path.host_path, onerror=_open_up_and_retry)  # 3.11: no onexc
        return
    except (OSError, RecursionError) as exc:  # a tree too deep for rmtree, a file it cannot
        first = exc
    subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path.host_path)], check=False)
    if entry(path) is not None:
        _log.warning("%s could not be removed: %s", path.host_path, first)


def _open_up_and_retry(func: Callable[[str], object], failed: str, _exc: object) -> None:
    """rmtree's error handler: give the folder holding `failed` (and `failed`, when it is a
    folder) write permission on its descriptor, then try once more."""
    for folder in (os.path.dirname(failed), failed):
        with suppress(OSError):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, 0o700)
            finally:
                os.close(fd)
    with suppress(FileNotFoundError):
        func(failed)


def _change_failed(path: JobPath, exc: OSError) -> JobFileError:
    """Why removing or replacing `path` failed: a folder where a file belongs, or the OS's
    reason."""
    if isinstance(exc, IsADirectoryError):
        return JobFileError(str(path), Reason.DIRECTORY)
    return JobFileError(str(path), Reason.UNREADABLE, exc.strerror or "")

