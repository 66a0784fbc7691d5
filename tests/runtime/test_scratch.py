"""The scratch folder's helpers (workers/runtime/base.py), on the real file system; no engine,
no process: safe without the heavy lock."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from workers.runtime.base import disk_usage_mb, make_scratch, remove_scratch, scratch_path


def test_scratch_is_one_folder_per_container_name(tmp_path: Path) -> None:
    path = make_scratch(tmp_path / "root", "trainyard-abc-job-7", uid=os.getuid())
    assert path == tmp_path / "root" / "trainyard-abc-job-7" and path.is_dir()
    assert make_scratch(tmp_path / "root", "trainyard-abc-job-7", uid=os.getuid()) == path
    for bad in ("../x", "a/b", "", ".."):
        with pytest.raises(ValueError):
            scratch_path(tmp_path, bad)


def test_disk_usage_counts_blocks_and_follows_no_link(tmp_path: Path) -> None:
    root = make_scratch(tmp_path, "job", uid=os.getuid())
    (root / "sub").mkdir()
    (root / "sub" / "a").write_bytes(os.urandom(3 * 1024 * 1024))
    outside = tmp_path / "outside"
    outside.write_bytes(os.urandom(5 * 1024 * 1024))
    (root / "link").symlink_to(outside)
    assert disk_usage_mb(root) == 3
    assert disk_usage_mb(tmp_path / "missing") == 0


def test_remove_takes_what_the_job_left_and_nothing_else(tmp_path: Path) -> None:
    root = make_scratch(tmp_path, "job", uid=os.getuid())
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file").write_text("x")
    (root / "link-out").symlink_to(keep)
    locked = root / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    locked.chmod(0o500)  # the job took its own write permission away
    remove_scratch(tmp_path, "job")
    assert not root.exists()
    assert (keep / "file").read_text() == "x", "a link is removed, never followed"
    remove_scratch(tmp_path, "job")  # gone already: no error


def test_remove_copes_with_a_tree_deeper_than_rmtree_recurses(tmp_path: Path) -> None:
    root = make_scratch(tmp_path, "job", uid=os.getuid())
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1500):  # more than Python's default recursion limit
        os.mkdir("d", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    remove_scratch(tmp_path, "job")
    assert not root.exists()


def test_disk_usage_never_descends_into_a_folder_swapped_for_a_link(tmp_path: Path) -> None:
    """A running job can swap a folder for a link between the walk's look at it and its
    descent (the check-then-use race, CVE-2018-15664): the outside tree is never counted."""
    root = make_scratch(tmp_path, "job", uid=os.getuid())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(os.urandom(8 * 1024 * 1024))
    for i in range(200):  # many folders: many moments where one of them is a link
        (root / f"d{i}").mkdir()
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for i in range(200):
                folder, aside = root / f"d{i}", root / f"d{i}.aside"
                os.rename(folder, aside)
                folder.symlink_to(outside)
                folder.unlink()
                os.rename(aside, folder)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        seen = {disk_usage_mb(root) for _ in range(300)}
    finally:
        stop.set()
        swapper.join()
        sys.setswitchinterval(old_interval)
    assert seen == {0}, f"counted what a link points to: {sorted(seen)} MB"
