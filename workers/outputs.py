"""A job's output folder: creating it, setting old training aside, probing what is there.
Only workers (and the API's read-only downloads) touch these folders; the layout is
app/domain/layout.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.domain.completion import OutputFacts
from app.domain.layout import results_zip, set_aside_dir, train_dir
from app.domain.states import JobType

CONTAINER_UID = 1000  # the reference image's non-root user; outputs must be writable by it


def make_writable_dir(path: Path) -> None:
    """Create a folder the container's non-root user can write (we may run as root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, CONTAINER_UID, CONTAINER_UID)
    else:
        path.chmod(0o777)


def set_aside_training(output_root: Path, model_uuid: object, job_id: int) -> Path | None:
    """Restart: move the earlier training's files out of the way, once per job."""
    current = train_dir(output_root, model_uuid)
    target = set_aside_dir(output_root, model_uuid, job_id)
    if target.exists() or not current.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    current.rename(target)
    return target


def _data_rows(csv_path: Path) -> int | None:
    """Data rows of a CSV (non-blank lines after the header); None when the file is missing."""
    try:
        with csv_path.open("rb") as handle:
            lines = [line for line in handle if line.strip()]
    except FileNotFoundError:
        return None
    return max(0, len(lines) - 1)


def probe(job_type: JobType, output_dir: Path, eval_epoch: int | None) -> OutputFacts:
    if not output_dir.is_dir():
        return OutputFacts(dir_exists=False)
    if job_type is JobType.TRAIN:
        return OutputFacts(dir_exists=True, val_rows=_data_rows(output_dir / "val.csv"))
    return OutputFacts(
        dir_exists=True,
        test_csv=(output_dir / "test" / "test.csv").is_file(),
        results_zip=results_zip(output_dir, eval_epoch).is_file(),
    )


def read_progress(output_dir: Path) -> tuple[int, int | None] | None:
    """(epochs done, latest checkpoint epoch) from the trainer's progress.json, if readable."""
    try:
        data = json.loads((output_dir / "progress.json").read_text())
        checkpoint = data.get("checkpoint_epoch")
        return int(data["epoch"]), int(checkpoint) if checkpoint is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
