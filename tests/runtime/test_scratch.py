"""The scratch folder's helpers (workers/runtime/base.py), on the real file system; no engine,
no process: safe without the heavy lock."""

from __future__ import annotations

import os
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
