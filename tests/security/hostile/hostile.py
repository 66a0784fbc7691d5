"""TEST-ONLY hostile trainer (issue 10): the reference trainer, then one planted attack.

The platform starts it like any trainer (trainer/README.md: argv only). `params.hostile_case`
names the attack; without it this is exactly the reference trainer. Cases (see CASES):

  link-environ:<file>   <file> becomes a symlink to /proc/self/environ (the reader's secrets)
  link-passwd:<file>    ... to /etc/passwd (a host file)
  link-zero:<file>      ... to /dev/zero (endless bytes)
  fifo:<file>           <file> becomes a FIFO (a reader that opens it blocks)
  dir:<file>            <file> becomes a directory
  log-nul               NULs on stdout and stderr, then exit 1
  log-bad-utf8          invalid UTF-8 on stdout and stderr, then exit 1
  header-nul            NUL in the header of train.csv and val.csv
  header-bad-utf8       invalid UTF-8 in the header of train.csv and val.csv
  environ-tmp-lists     tmp/train.txt and tmp/val.txt both link to /proc/self/environ (the
                        duplicate-sample check then quotes the environment)
  sparse-train-csv      train.csv becomes a 5 GB sparse file with no newline
  link-dir-train-etc    the model's train/ becomes a symlink to /etc (the test then resumes)
  link-dir-tmp-etc      the model's tmp/ becomes a symlink to /etc (the test then resumes)

<file> is one of FILES: where it lives depends on the job type (TRAIN files under the output
folder, EVAL files under its test/, split lists in --split-dir). A TRAIN job plants only TRAIN
and split-list files, an EVAL job only EVAL files, so the step before stays valid.

After planting, the container stays alive PLANTED_HOLD_S so that the platform's live readers
(progress, live metrics, the API) meet the planted file while the job runs, then exits 0
(unless the case says otherwise). Only files inside the job's own mounted folder are touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, "/opt/trainer")
import train  # the reference trainer
from trainyard_trainer import install_signal_handlers, should_stop  # its helper library

PLANTED_HOLD_S = float(os.environ.get("HOSTILE_HOLD_S", "4"))  # env: host-side tests
SPARSE_BYTES = 5 * 1024**3

TARGETS = {
    "link-environ": "/proc/self/environ",
    "link-passwd": "/etc/passwd",
    "link-zero": "/dev/zero",
}
# name -> (job type that plants it, where: "out" = --output-dir, "test" = OUTPUT/test,
# "split" = --split-dir, relative path)
FILES = {
    "train.csv": ("TRAIN", "out", "train.csv"),
    "val.csv": ("TRAIN", "out", "val.csv"),
    "progress.json": ("TRAIN", "out", "progress.json"),
    "checkpoints": ("TRAIN", "out", "checkpoints"),
    "checkpoint": ("TRAIN", "out", "checkpoints/epoch_0002.ckpt"),
    "tmp-train.txt": ("TRAIN", "split", "train.txt"),
    "tmp-val.txt": ("TRAIN", "split", "val.txt"),
    "tmp-test.txt": ("TRAIN", "split", "test.txt"),
    "test.csv": ("EVAL", "test", "test.csv"),
    "summary.json": ("EVAL", "test", "summary.json"),
    "predictions.csv": ("EVAL", "test", "predictions.csv"),
    "results-zip": ("EVAL", "test", "results_epoch_{epoch}.zip"),
}


def _arg(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def _take_over(folder: Path) -> None:
    """Make `folder` ours when the platform made it read-only to us (tmp/ is written by the
    worker, maybe as root): the model folder is ours, so rename it aside and put a copy of
    its files in a new folder of the same name. Any job can do this."""
    if os.access(folder, os.W_OK):
        return
    aside = folder.with_name(f"{folder.name}.taken")
    folder.rename(aside)
    folder.mkdir()
    for entry in aside.iterdir():
        if entry.is_file():
            shutil.copyfile(entry, folder / entry.name)


def _move_aside(folder: Path) -> None:
    """Remove a folder we may not be allowed to empty (see _take_over)."""
    folder.rename(folder.with_name(f"{folder.name}.taken"))


def _replace(path: Path, kind: str) -> None:
    """Put the hostile thing at `path` (removing what the trainer wrote there)."""
    _take_over(path.parent)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in TARGETS:
        path.symlink_to(TARGETS[kind])
    elif kind == "fifo":
        os.mkfifo(path, 0o666)
    elif kind == "dir":
        path.mkdir()
        (path / "inside.txt").write_text("a directory where a file belongs\n")
    else:
        raise SystemExit(f"hostile: unknown kind {kind!r}")


def _hold(seconds: float) -> None:
    """Stay alive (as if still training), ending at once on SIGTERM like a good trainer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not should_stop():
        time.sleep(0.1)
    if should_stop():
        raise SystemExit(143)


def _rewrite_header(path: Path, bad: bytes) -> None:
    lines = path.read_bytes().split(b"\n", 1)
    header = lines[0].replace(b"epoch,", b"epoch," + bad, 1)
    path.write_bytes(header + b"\n" + (lines[1] if len(lines) > 1 else b""))


def main(argv: list[str]) -> int:
    params = json.loads(_arg(argv, "--params") or "{}")
    case = str(params.get("hostile_case", ""))
    job_type = (_arg(argv, "--job-type") or "").upper()
    out = Path(_arg(argv, "--output-dir") or ".")
    split = Path(_arg(argv, "--split-dir") or out.parent / "tmp")
    install_signal_handlers()

    if case in ("link-dir-train-etc", "link-dir-tmp-etc"):
        if "--resume-from" in argv:  # the resumed job meets its own planted link
            print("hostile: resumed after planting a link to /etc", file=sys.stderr)
            return 1
        # Train two epochs of the model's total (the test cancels, then resumes).
        trainer_argv = list(argv)
        trainer_argv[trainer_argv.index("--total-epoch") + 1] = "2"
        code = train.main(trainer_argv)
        if code != 0:
            return code
        _hold(3.0)  # the supervisor records progress (checkpoint 2) before the swap
        victim = out if case == "link-dir-train-etc" else split
        _move_aside(victim)
        victim.symlink_to("/etc")
        print(f"hostile: {victim.name}/ is now a link to /etc", flush=True)
        _hold(600.0)  # until the test cancels
        return 0

    code = train.main(argv)
    if code != 0 or not case:
        return code

    if case in ("log-nul", "log-bad-utf8"):
        junk = b"a\x00b\x00\n" if case == "log-nul" else b"bad \xff\xfe \xc3\x28 utf-8\n"
        for stream in (sys.stdout.buffer, sys.stderr.buffer):
            stream.write(junk * 3)
            stream.flush()
        return 1
    if case in ("header-nul", "header-bad-utf8"):
        if job_type == "TRAIN":
            bad = b"lo\x00ss," if case == "header-nul" else b"lo\xff\xc3\x28ss,"
            for name in ("train.csv", "val.csv"):
                _rewrite_header(out / name, bad)
            _hold(PLANTED_HOLD_S)
        return 0
    if case == "environ-tmp-lists":
        if job_type == "TRAIN":
            for name in ("train.txt", "val.txt"):
                _replace(split / name, "link-environ")
            _hold(PLANTED_HOLD_S)
        return 0
    if case == "sparse-train-csv":
        if job_type == "TRAIN":
            path = out / "train.csv"
            path.unlink()
            with path.open("wb") as handle:
                handle.write(b"epoch,loss")
                handle.truncate(SPARSE_BYTES)
            _hold(PLANTED_HOLD_S)
        return 0

    kind, _, name = case.partition(":")
    if name not in FILES or kind not in (*TARGETS, "fifo", "dir"):
        print(f"hostile: unknown case {case!r}", file=sys.stderr)
        return 2
    plants_on, where, relative = FILES[name]
    if plants_on != job_type:
        return 0
    base = {"out": out, "test": out / "test", "split": split}[where]
    _replace(base / relative.format(epoch=_arg(argv, "--epoch")), kind)
    print(f"hostile: planted {kind} at {relative}", flush=True)
    _hold(PLANTED_HOLD_S)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit:
        raise
    except BaseException as exc:  # a broken attacker must say so, not look like a defence
        print(f"hostile: attacker failed: {exc!r}", file=sys.stderr)
        sys.exit(99)
