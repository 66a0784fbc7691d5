"""States of jobs, steps and models, with their Korean display names.

Model status is never stored on its own authority: it is derived from the two step states
(SPEC §3) by `derive_model_status`.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # ended without a result, e.g. lost in a restart
    CANCELED = "CANCELED"  # ended by a user

    @property
    def display_name(self) -> str:
        return _JOB_NAMES[self]

    @property
    def is_terminal(self) -> bool:
        return self in JOB_TERMINAL


_JOB_NAMES = {
    JobStatus.QUEUED: "대기중",
    JobStatus.RUNNING: "실행중",
    JobStatus.SUCCESS: "성공",
    JobStatus.FAILED: "실패",
    JobStatus.STOPPED: "중단됨",
    JobStatus.CANCELED: "취소",
}

#: A job in one of these states never changes again.
JOB_TERMINAL = frozenset(
    {JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
)
#: A job in one of these states may still own (or be about to own) a container.
JOB_ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class StepState(StrEnum):
    READY = "READY"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"

    @property
    def display_name(self) -> str:
        return _STEP_NAMES[self]


_STEP_NAMES = {
    StepState.READY: "대기",
    StepState.IN_PROGRESS: "진행중",
    StepState.COMPLETED: "완료",
    StepState.STOPPED: "중단됨",
    StepState.ERROR: "오류",
}


class ModelStatus(StrEnum):
    READY = "READY"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"

    @property
    def display_name(self) -> str:
        return _STEP_NAMES[StepState(self.value)]


class JobType(StrEnum):
    TRAIN = "TRAIN"  # step1
    EVAL = "EVAL"  # step2

    @property
    def step(self) -> int:
        return 1 if self is JobType.TRAIN else 2


class TrainType(StrEnum):
    GENERAL = "GENERAL"
    FINE_TUNE = "FINE_TUNE"
    TRANSFER = "TRANSFER"

    @property
    def display_name(self) -> str:
        return _TRAIN_TYPE_NAMES[self]


_TRAIN_TYPE_NAMES = {
    TrainType.GENERAL: "일반",
    TrainType.FINE_TUNE: "미세조정",
    TrainType.TRANSFER: "전이학습",
}

MODEL_NUMBERS = ("G1", "G2", "G3", "G4")


def derive_model_status(step1: StepState, step2: StepState) -> ModelStatus:
    """SPEC §3: the model's status follows from its two steps, in this order."""
    if StepState.IN_PROGRESS in (step1, step2):
        return ModelStatus.IN_PROGRESS
    if step1 is StepState.ERROR:
        return ModelStatus.ERROR
    if step1 is StepState.STOPPED:
        return ModelStatus.STOPPED
    if step1 is StepState.COMPLETED:
        # A stopped or failed test leaves the trained model complete; step2 tells the rest.
        return ModelStatus.COMPLETED
    return ModelStatus.READY
