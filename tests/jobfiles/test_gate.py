"""The gate to a job's files (app/jobfiles.py), against the files a hostile job can plant:
links to secrets and devices, FIFOs, folders where files belong, oversize sparse files.
No services needed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app import jobfiles
from app.domain import layout
from app.jobfiles import Entry, FileKind, JobFileError, JobPath, Limits, Reason

MODEL = "0b7c1c4e-1111-4c4c-8c8c-123456789abc"
CSV, JSON = FileKind.METRICS_CSV, FileKind.JSON
read = jobfiles.read_file


@pytest.fixture
def root(tmp_path: Path) -> JobPath:
    (tmp_path / "out" / MODEL / "train").mkdir(parents=True)
    return JobPath(tmp_path / "out", (), Limits(metrics_csv=1024, json=64))


def model_folder(root: JobPath) -> Path:
    return root.root / MODEL


def refused(call: object, reason: Reason, path: str) -> JobFileError:
    with pytest.raises(JobFileError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.reason is reason, caught.value
    assert caught.value.path == path
    return caught.value


def test_reads_a_regular_file(root: JobPath) -> None:
    (model_folder(root) / "train" / "val.csv").write_bytes(b"epoch,loss\n1,0.5\n")
    path = layout.train_dir(root, MODEL) / "val.csv"
    assert read(path, CSV) == b"epoch,loss\n1,0.5\n"
    assert jobfiles.has_file(path)
    assert str(path) == "train/val.csv"  # messages show paths relative to the model folder


@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/passwd", "/dev/zero"])
def test_a_link_to_a_secret_or_device_is_refused_without_reading_it(
    root: JobPath, target: str
) -> None:
    (model_folder(root) / "train" / "val.csv").symlink_to(target)
    path = layout.train_dir(root, MODEL) / "val.csv"
    error = refused(lambda: read(path, CSV), Reason.LINK, "train/val.csv")
    assert str(error) == "train/val.csv is a symbolic link (links are not followed)"
    assert str(root.root) not in str(error)
    refused(lambda: jobfiles.has_file(path), Reason.LINK, "train/val.csv")
    assert jobfiles.entry(path) is Entry.LINK


def test_a_link_among_the_folders_is_refused(root: JobPath, tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "val.csv").write_text("epoch,loss\n1,SECRET\n")
    (model_folder(root) / "train").rmdir()
    (model_folder(root) / "train").symlink_to(secret)
    path = layout.train_dir(root, MODEL) / "val.csv"
    error = refused(lambda: read(path, CSV), Reason.LINK, "train")
    assert "SECRET" not in str(error)
    refused(lambda: jobfiles.entry(path), Reason.LINK, "train")
    refused(lambda: jobfiles.list_dir(layout.train_dir(root, MODEL)), Reason.LINK, "train")


def test_a_relative_link_that_stays_inside_is_refused_too(root: JobPath) -> None:
    (model_folder(root) / "train" / "real.csv").write_text("epoch\n1\n")
    (model_folder(root) / "train" / "val.csv").symlink_to("real.csv")
    path = layout.train_dir(root, MODEL) / "val.csv"
    refused(lambda: jobfiles.open_file(path, CSV), Reason.LINK, "train/val.csv")


def test_a_fifo_is_refused_at_once(root: JobPath) -> None:
    os.mkfifo(model_folder(root) / "train" / "progress.json")
    path = layout.train_dir(root, MODEL) / "progress.json"
    done: list[BaseException] = []

    def read_fifo() -> None:
        try:
            read(path, JSON)
        except BaseException as exc:
            done.append(exc)

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(done[0], JobFileError) and done[0].reason is Reason.FIFO
    refused(lambda: jobfiles.has_file(path), Reason.FIFO, "train/progress.json")


def test_a_folder_where_a_file_belongs_is_refused(root: JobPath) -> None:
    (model_folder(root) / "train" / "val.csv").mkdir()
    path = layout.train_dir(root, MODEL) / "val.csv"
    refused(lambda: read(path, CSV), Reason.DIRECTORY, "train/val.csv")
    refused(lambda: jobfiles.has_file(path), Reason.DIRECTORY, "train/val.csv")


def test_a_file_where_a_folder_belongs_is_refused(root: JobPath) -> None:
    (model_folder(root) / "train").rmdir()
    (model_folder(root) / "train").write_text("x")
    path = layout.train_dir(root, MODEL) / "val.csv"
    refused(lambda: read(path, CSV), Reason.NOT_DIRECTORY, "train")
    refused(lambda: jobfiles.has_dir(layout.train_dir(root, MODEL)), Reason.NOT_DIRECTORY, "train")


def test_an_oversize_sparse_file_is_refused_before_reading(root: JobPath) -> None:
    with open(model_folder(root) / "train" / "train.csv", "wb") as handle:
        handle.truncate(5 << 30)  # 5 GB, no newline, no disk used
    path = layout.train_dir(root, MODEL) / "train.csv"
    error = refused(
        lambda: jobfiles.open_file(path, CSV), Reason.TOO_LARGE, "train/train.csv"
    )
    assert "5368709120 > 1024 bytes" in str(error)


def test_missing_files_and_folders(root: JobPath) -> None:
    train = layout.train_dir(root, MODEL)
    assert jobfiles.entry(train / "val.csv") is None
    assert not jobfiles.has_file(train / "val.csv")
    assert not jobfiles.has_dir(layout.eval_dir(root, MODEL, 3))
    assert jobfiles.entry(layout.eval_dir(root, MODEL, 3) / "test" / "test.csv") is None
    refused(lambda: read(train / "val.csv", JSON), Reason.MISSING, "train/val.csv")


def test_bounded_lines_stop_a_line_of_gigabytes(root: JobPath) -> None:
    with open(model_folder(root) / "train" / "val.csv", "wb") as handle:
        handle.write(b"epoch\n1\n" + b"9" * 900)
    with jobfiles.open_file(layout.train_dir(root, MODEL) / "val.csv", CSV) as f:
        lines = jobfiles.bounded_lines(f, 100)
        assert next(lines) == b"epoch\n" and next(lines) == b"1\n"
        with pytest.raises(jobfiles.LineTooLong, match="line 3 is longer than 100 bytes"):
            next(lines)


def test_list_dir_does_not_follow_links(root: JobPath) -> None:
    train = model_folder(root) / "train"
    (train / "checkpoints").mkdir()
    (train / "checkpoints" / "epoch_1.pt").write_bytes(b"x")
    (train / "checkpoints" / "epoch_2.pt").symlink_to("/etc/passwd")
    os.mkfifo(train / "checkpoints" / "epoch_3.pt")
    listing = jobfiles.list_dir(layout.train_dir(root, MODEL) / "checkpoints")
    assert listing == {
        "epoch_1.pt": Entry.FILE,
        "epoch_2.pt": Entry.LINK,
        "epoch_3.pt": Entry.FIFO,
    }


def test_make_dirs_creates_and_owns_through_descriptors(root: JobPath) -> None:
    folder = layout.eval_dir(root, MODEL, 7) / "test"
    jobfiles.make_dirs(folder, mode=0o777)
    made = model_folder(root) / "eval-7" / "test"
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o777


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_make_dirs_never_changes_the_owner_of_a_link_target(root: JobPath, tmp_path: Path) -> None:
    victim = tmp_path / "etc"
    victim.mkdir()
    before = victim.stat()
    (model_folder(root) / "train").rmdir()
    (model_folder(root) / "train").symlink_to(victim)  # `rm -rf train; ln -s /etc train`
    refused(
        lambda: jobfiles.make_dirs(layout.train_dir(root, MODEL), owner=1000), Reason.LINK, "train"
    )
    after = victim.stat()
    assert (after.st_uid, after.st_mode) == (before.st_uid, before.st_mode)
    jobfiles.make_dirs(layout.eval_dir(root, MODEL, 2), owner=1000)
    assert (model_folder(root) / "eval-2").stat().st_uid == 1000


def test_rename_moves_a_link_itself(root: JobPath, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (model_folder(root) / "train").rmdir()
    (model_folder(root) / "train").symlink_to(victim)
    target = layout.set_aside_dir(root, MODEL, 5)
    jobfiles.make_dirs(target.parent)
    jobfiles.rename(layout.train_dir(root, MODEL), target)
    assert (model_folder(root) / "set-aside" / "train-before-job-5").is_symlink()
    assert victim.is_dir()


def test_write_file_replaces_a_link_instead_of_writing_through_it(
    root: JobPath, tmp_path: Path
) -> None:
    victim = tmp_path / "passwd"
    victim.write_text("root:x:0:0\n")
    (model_folder(root) / "tmp").mkdir()
    (model_folder(root) / "tmp" / "train.txt").symlink_to(victim)
    jobfiles.write_file(layout.split_dir(root, MODEL) / "train.txt", b"a\nb\n")
    assert victim.read_text() == "root:x:0:0\n"
    assert (model_folder(root) / "tmp" / "train.txt").read_bytes() == b"a\nb\n"
    assert sorted(p.name for p in (model_folder(root) / "tmp").iterdir()) == ["train.txt"]


def test_names_cannot_climb_out(root: JobPath) -> None:
    with pytest.raises(ValueError):
        _ = root / MODEL / ".."
    with pytest.raises(ValueError):
        _ = root / "a\0b"


def test_the_walk_without_openat2_refuses_the_same(
    root: JobPath, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Kernels before 5.6 (or a seccomp filter) have no openat2: the O_NOFOLLOW walk."""
    monkeypatch.setattr(jobfiles, "_openat2_works", False)
    train = model_folder(root) / "train"
    (train / "val.csv").symlink_to("/proc/self/environ")
    os.mkfifo(train / "progress.json")
    (train / "ok.csv").write_text("epoch\n1\n")
    path = layout.train_dir(root, MODEL)
    refused(lambda: read(path / "val.csv", JSON), Reason.LINK, "train/val.csv")
    refused(lambda: read(path / "progress.json", JSON), Reason.FIFO, "train/progress.json")
    assert read(path / "ok.csv", JSON) == b"epoch\n1\n"
    (model_folder(root) / "eval-1").symlink_to(tmp_path)
    inside_eval = layout.eval_dir(root, MODEL, 1) / "x"
    refused(lambda: read(inside_eval, JSON), Reason.LINK, "eval-1")


def test_openat2_is_used_where_the_kernel_has_it(root: JobPath) -> None:
    (model_folder(root) / "train" / "val.csv").write_text("x")
    read(layout.train_dir(root, MODEL) / "val.csv", JSON)
    release = tuple(int(p) for p in os.uname().release.split(".")[:2] if p.isdigit())
    if jobfiles._SYS_OPENAT2 is None or release < (5, 6):
        pytest.skip("no openat2 here: the O_NOFOLLOW walk is used (tested above)")
    assert jobfiles._openat2_works is True


def test_a_socket_is_refused(root: JobPath, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.chdir(model_folder(root) / "train")  # a socket path must be short
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind("progress.json")
        path = layout.train_dir(root, MODEL) / "progress.json"
        refused(lambda: read(path, JSON), Reason.SPECIAL, "train/progress.json")
    finally:
        listener.close()
