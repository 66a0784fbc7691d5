"""A job's output folder: creating it, setting old training aside, probing what is there.
Every access goes through the gate (app/jobfiles.py); the layout is app/domain/layout.py."""

from __future__ import annotations

import json
import os

from app import jobfiles
from app.domain.completion import OutputFacts
from app.domain.layout import results_zip, set_aside_dir, train_dir
from app.domain.states import JobType
from app.jobfiles import FileKind, JobFileError, JobPath

CONTAINER_UID = 1000  # the reference image's non-root user; outputs must be writable by it
_BLOCK = 1 << 20
_INT4_MAX = 2**31 - 1


def make_writable_dir(path: JobPath) -> None:
    """Create a folder the container's non-root user can write (we may run as root); a link
    anywhere on the way is refused, and the owner changes on the folder's descriptor."""
    if os.geteuid() == 0:
        jobfiles.make_dirs(path, owner=CONTAINER_UID)
    else:
        jobfiles.make_dirs(path, mode=0o777)


def set_aside_training(output_root: JobPath, model_uuid: object, job_id: int) -> JobPath | None:
    """Restart: move the earlier training's files out of the way, once per job. Whatever
    `train` is (a link too) is moved, never followed."""
    current = train_dir(output_root, model_uuid)
    target = set_aside_dir(output_root, model_uuid, job_id)
    if jobfiles.entry(target) is not None or jobfiles.entry(current) is None:
        return None
    jobfiles.make_dirs(target.parent)
    jobfiles.rename(current, target)
    return target


def _data_rows(csv_path: JobPath) -> int | None:
    """Data rows of a CSV (non-blank lines after the header); None when the file is missing.
    Counted block by block: a line of gigabytes costs no memory."""
    if not jobfiles.has_file(csv_path):
        return None
    lines = 0
    blank = True  # the line being read has no non-blank byte so far
    with jobfiles.open_file(csv_path, FileKind.METRICS_CSV) as handle:
        while block := handle.read(_BLOCK):
            parts = block.split(b"\n")
            for part in parts[:-1]:
                if not blank or part.strip():
                    lines += 1
                blank = True
            blank = blank and not parts[-1].strip()
    lines += not blank
    return max(0, lines - 1)


def probe(job_type: JobType, output_dir: JobPath, eval_epoch: int | None) -> OutputFacts:
    """What the job left; a file the gate refuses (a link, a FIFO, …) is named in `refused`."""
    try:
        if not jobfiles.has_dir(output_dir):
            return OutputFacts(dir_exists=False)
        if job_type is JobType.TRAIN:
            return OutputFacts(dir_exists=True, val_rows=_data_rows(output_dir / "val.csv"))
        return OutputFacts(
            dir_exists=True,
            test_csv=jobfiles.has_file(output_dir / "test" / "test.csv"),
            results_zip=jobfiles.has_file(results_zip(output_dir, eval_epoch)),
        )
    except JobFileError as exc:
        return OutputFacts(dir_exists=True, refused=str(exc))


def read_progress(output_dir: JobPath) -> tuple[int, int | None] | None:
    """(epochs done, latest checkpoint epoch) from the trainer's progress.json, if readable."""
    try:
        data = json.loads(jobfiles.read_file(output_dir / "progress.json", FileKind.JSON))
        epoch, checkpoint = int(data["epoch"]), data.get("checkpoint_epoch")
        checkpoint = int(checkpoint) if checkpoint is not None else None
    except (JobFileError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    if not 0 <= epoch <= _INT4_MAX or not 0 <= (checkpoint or 0) <= _INT4_MAX:
        return None  # the columns are 32-bit: a value past them is no progress
    return epoch, checkpoint
