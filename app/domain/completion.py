"""How a job's end is judged (SPEC §5): the container's exit state plus its outputs decide the
job's observation. Pure: the worker gathers the facts, this module decides."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.checkpoints import expected_val_rows
from app.domain.states import JobType
from app.domain.transitions import (
    IMAGE_NOT_FOUND,
    INVALID_RUNTIME_SETTINGS,
    JobEvent,
    JobObservation,
)

MISSING_INCOMPLETE = "SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE"
NODE_LOST_INCOMPLETE = "NODE_LOST_OUTPUT_INCOMPLETE"
# Bounded retries (Settings.bounds): the job's judgement, or its launch, failed on every
# allowed attempt; the code is followed by the last attempt's error in one short line.
COMPLETION_FAILED = "COMPLETION_FAILED"
LAUNCH_FAILED = "LAUNCH_FAILED"
REASON_LIMIT = 200  # characters of an attempt's error kept in last_error

# Why a launch could run no container at all (workers/launcher.py), each followed by the
# launcher's reason ("IMAGE_NOT_FOUND: image 'x:1' is not on node n1"). None of them is the
# training code's fault, and the dashboard names each with its own remedy.
# IMAGE_NOT_FOUND (the claiming node lacks the image) and INVALID_RUNTIME_SETTINGS (the engine
# or the launcher refused them) live in app.domain.transitions: the API refuses commands with them.
DATASET_NOT_FOUND = "DATASET_NOT_FOUND"  # the model's dataset folder is not under DATASET_ROOT
DATASET_INVALID = "DATASET_INVALID"  # it is there, but its manifest cannot be read
CONTAINER_START_FAILED = "CONTAINER_START_FAILED"  # anything else that kept it from starting
LAUNCH_ERROR_CODES = frozenset(
    {IMAGE_NOT_FOUND, INVALID_RUNTIME_SETTINGS, DATASET_NOT_FOUND, DATASET_INVALID,
     CONTAINER_START_FAILED}
)  # fmt: skip


def launch_error(code: str, reason: str) -> str:
    """`CODE: reason` in one short line, as last_error keeps it."""
    if code not in LAUNCH_ERROR_CODES:
        raise ValueError(f"unknown launch error code {code!r}")
    line = " ".join(reason.split())
    return f"{code}: {line}"[: REASON_LIMIT + len(code) + 2]


def short_reason(exc: BaseException) -> str:
    """An attempt's error in one short line: the class and the first line of the message (of
    the driver's error when a wrapper carries one, e.g. `LockNotAvailable: canceling
    statement due to lock timeout`)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    text = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
    return text[:REASON_LIMIT]


def gave_up(code: str, reason: str | None, exit_code: int | None = None) -> JobObservation:
    """The observation that ends a job whose attempts are used up: FAILED, hence ERROR."""
    error = f"{code}: {reason or 'no attempt succeeded'}"[: REASON_LIMIT + len(code) + 2]
    return JobObservation(JobEvent.FAILED, exit_code if exit_code is not None else -1, error)


@dataclass(frozen=True)
class OutputFacts:
    """What the worker found in a job's output folder (None: not there)."""

    dir_exists: bool
    val_rows: int | None = None  # TRAIN: data rows of val.csv
    test_csv: bool = False  # EVAL
    results_zip: bool = False  # EVAL
    refused: str | None = None  # a file the gate would not read, e.g. "train/val.csv is a FIFO…"


@dataclass(frozen=True)
class ContainerEnd:
    exit_code: int
    oom_killed: bool


def output_gap(
    job_type: JobType, facts: OutputFacts, total_epoch: int | None, val_interval: int
) -> str | None:
    """None when the outputs are complete, else the user document's reason code."""
    if not facts.dir_exists:
        return "output-dir-missing"
    if facts.refused is not None:
        return f"output-refused: {facts.refused}"
    if job_type is JobType.EVAL:
        if not facts.test_csv:
            return "test.csv-missing"
        if not facts.results_zip:
            return "results-zip-missing"
        return None
    if total_epoch is None:
        return "total-epoch-missing"
    if facts.val_rows is None:
        return "val.csv-missing"
    if facts.val_rows != expected_val_rows(total_epoch, val_interval):
        return "val.csv-lines-mismatch"
    return None


def judge(
    container: ContainerEnd | None,
    gap: str | None,
    log_tail: str | None,
    node_lost: bool = False,
    launch_failure: str | None = None,
) -> JobObservation:
    """The SPEC §5 table. `container` is None when the container is missing — or unknowable,
    because its node went silent (`node_lost`): then too the outputs decide. A launch that ran
    no container (`launch_failure`, see `launch_error`) is judged by why, not by Docker's 125."""
    if launch_failure is not None:
        exit_code = container.exit_code if container is not None else -1
        return JobObservation(JobEvent.FAILED, exit_code, launch_failure, log_tail)
    if container is None:
        if gap is None:
            return JobObservation(JobEvent.SUCCEEDED, exit_code=0)
        lost = NODE_LOST_INCOMPLETE if node_lost else MISSING_INCOMPLETE
        return JobObservation(JobEvent.LOST, exit_code=-1, error=f"{lost}: {gap}")
    if container.oom_killed:
        return JobObservation(JobEvent.FAILED, container.exit_code, "OOM_KILLED", log_tail)
    if container.exit_code != 0:
        code = container.exit_code
        return JobObservation(JobEvent.FAILED, code, f"CONTAINER_EXIT_{code}", log_tail)
    if gap is not None:
        return JobObservation(JobEvent.FAILED, 0, f"OUTPUT_INCOMPLETE: {gap}", log_tail)
    return JobObservation(JobEvent.SUCCEEDED, exit_code=0)
