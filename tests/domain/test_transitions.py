"""Every (step1 × step2 × command) combination against SPEC §4, and the graph's invariants."""

from __future__ import annotations

import itertools

import pytest

from app.domain.states import (
    JOB_ACTIVE,
    JOB_TERMINAL,
    JobStatus,
    JobType,
    ModelStatus,
    StepState,
    derive_model_status,
)
from app.domain.transitions import (
    CANCELED_BY_USER,
    Accepted,
    Command,
    CommandRequest,
    JobEvent,
    JobObservation,
    JobSnapshot,
    ModelSnapshot,
    Reason,
    Rejected,
    decide,
)

STEPS = list(StepState)
CHECKPOINT_CHOICES = [None, 4]  # no checkpoint / latest checkpoint at epoch 4 (of 4, every 2)


def spec_allows(command: Command, step1: StepState, step2: StepState, ckpt: int | None) -> bool:
    """SPEC §4's "allowed when" column, restated independently of the implementation."""
    status = derive_model_status(step1, step2)
    return {
        Command.RUN: status == "READY",
        Command.RESTART: status in ("STOPPED", "ERROR"),
        Command.RESUME: status == "STOPPED" and ckpt is not None,
        Command.CANCEL: step1 == "IN_PROGRESS",
        Command.TEST_RUN: step1 == "COMPLETED" and step2 != "IN_PROGRESS" and ckpt is not None,
        Command.TEST_CANCEL: step2 == "IN_PROGRESS",
    }[command]


@pytest.mark.parametrize(
    ("step1", "step2", "command", "ckpt"),
    list(itertools.product(STEPS, STEPS, list(Command), CHECKPOINT_CHOICES)),
    ids=lambda v: str(v),
)
def test_every_state_and_command(
    step1: StepState, step2: StepState, command: Command, ckpt: int | None
) -> None:
    model = ModelSnapshot(step1, step2, total_epoch=4, val_interval=2, checkpoint_epoch=ckpt)
    epoch = 4 if command is Command.TEST_RUN else None
    decision = decide(model, None, CommandRequest(command, epoch=epoch))

    if not spec_allows(command, step1, step2, ckpt):
        assert isinstance(decision, Rejected)
        assert decision.reason in (Reason.STATE, Reason.NO_CHECKPOINT)
        assert decision.message.startswith("Can't")
        return

    assert isinstance(decision, Accepted)
    after = derive_model_status(decision.step1, decision.step2)
    if command in (Command.RUN, Command.RESTART, Command.RESUME):
        assert decision.step1 is StepState.IN_PROGRESS
        assert decision.new_job is not None and decision.new_job.job_type is JobType.TRAIN
        assert after is ModelStatus.IN_PROGRESS
        assert decision.last_error is None  # cleared
    if command is Command.RESTART:
        assert decision.step2 is StepState.READY
        assert decision.reset_training and decision.new_job.fresh_outputs
    if command is Command.RESUME:
        assert decision.new_job.resume_from == ckpt
    if command is Command.CANCEL:
        assert decision.step1 is StepState.STOPPED
        assert decision.job_change is not None
        assert decision.job_change.status is JobStatus.CANCELED
        assert decision.job_change.exit_code == -1
        assert decision.last_error == CANCELED_BY_USER
        assert decision.stop_container
    if command is Command.TEST_RUN:
        assert decision.step2 is StepState.IN_PROGRESS and decision.step1 is step1
        assert decision.new_job.job_type is JobType.EVAL and decision.new_job.eval_epoch == 4
    if command is Command.TEST_CANCEL:
        assert decision.step2 is StepState.STOPPED and decision.step1 is step1
        assert decision.job_change.status is JobStatus.CANCELED
        assert after is ModelStatus.COMPLETED or step1 is not StepState.COMPLETED


def test_rejection_names_the_state() -> None:
    model = ModelSnapshot(StepState.COMPLETED, StepState.READY, 4, 2, 4)
    decision = decide(model, None, CommandRequest(Command.RESUME))
    assert isinstance(decision, Rejected)
    assert "COMPLETED" in decision.message and "resume" in decision.message


def test_resume_without_checkpoint_suggests_restart() -> None:
    model = ModelSnapshot(StepState.STOPPED, StepState.READY, 4, 2, None)
    decision = decide(model, None, CommandRequest(Command.RESUME))
    assert isinstance(decision, Rejected)
    assert decision.reason is Reason.NO_CHECKPOINT
    assert "restart" in decision.message


@pytest.mark.parametrize(
    ("epoch", "ok"), [(1, False), (2, True), (3, False), (4, True), (5, False)]
)
def test_test_run_needs_a_checkpoint_for_the_epoch(epoch: int, ok: bool) -> None:
    model = ModelSnapshot(StepState.COMPLETED, StepState.READY, 4, 2, 4)
    decision = decide(model, None, CommandRequest(Command.TEST_RUN, epoch=epoch))
    assert isinstance(decision, Accepted) is ok


def test_derived_status_order() -> None:
    assert (
        derive_model_status(StepState.COMPLETED, StepState.IN_PROGRESS) is ModelStatus.IN_PROGRESS
    )
    assert derive_model_status(StepState.ERROR, StepState.READY) is ModelStatus.ERROR
    assert derive_model_status(StepState.STOPPED, StepState.READY) is ModelStatus.STOPPED
    assert derive_model_status(StepState.COMPLETED, StepState.ERROR) is ModelStatus.COMPLETED
    assert derive_model_status(StepState.COMPLETED, StepState.STOPPED) is ModelStatus.COMPLETED
    assert derive_model_status(StepState.READY, StepState.READY) is ModelStatus.READY


# --- worker observations and graph invariants --------------------------------------------------


def _running_model(job_type: JobType) -> ModelSnapshot:
    if job_type is JobType.TRAIN:
        return ModelSnapshot(StepState.IN_PROGRESS, StepState.READY, 4, 2, None)
    return ModelSnapshot(StepState.COMPLETED, StepState.IN_PROGRESS, 4, 2, 4)


@pytest.mark.parametrize("job_type", list(JobType))
@pytest.mark.parametrize("status", list(JobStatus))
@pytest.mark.parametrize("event", list(JobEvent))
def test_nothing_leaves_a_terminal_job_state(
    job_type: JobType, status: JobStatus, event: JobEvent
) -> None:
    job = JobSnapshot(7, job_type, status, is_current=True)
    decision = decide(_running_model(job_type), job, JobObservation(event, exit_code=3))
    if status in JOB_TERMINAL:
        assert isinstance(decision, Rejected) and decision.reason is Reason.JOB_ENDED
    elif event is JobEvent.STARTED and status is JobStatus.RUNNING:
        assert isinstance(decision, Rejected)  # a repeated start changes nothing
    else:
        assert isinstance(decision, Accepted)


@pytest.mark.parametrize("job_type", list(JobType))
@pytest.mark.parametrize("status", sorted(JOB_ACTIVE))
def test_every_active_state_can_reach_an_end(job_type: JobType, status: JobStatus) -> None:
    """From QUEUED and RUNNING, each ending event and each cancel leads to a terminal state."""
    model = _running_model(job_type)
    job = JobSnapshot(7, job_type, status, is_current=True)
    for event in (JobEvent.SUCCEEDED, JobEvent.FAILED, JobEvent.LOST):
        decision = decide(model, job, JobObservation(event))
        assert isinstance(decision, Accepted)
        assert decision.job_change is not None and decision.job_change.status in JOB_TERMINAL
        step_after = decision.step1 if job_type is JobType.TRAIN else decision.step2
        assert step_after is not StepState.IN_PROGRESS
    cancel = Command.CANCEL if job_type is JobType.TRAIN else Command.TEST_CANCEL
    decision = decide(model, job, CommandRequest(cancel))
    assert isinstance(decision, Accepted) and decision.job_change.status in JOB_TERMINAL


def test_observation_outcomes_follow_spec_section_5() -> None:
    model = _running_model(JobType.TRAIN)
    job = JobSnapshot(7, JobType.TRAIN, JobStatus.RUNNING, is_current=True)
    done = decide(model, job, JobObservation(JobEvent.SUCCEEDED))
    assert isinstance(done, Accepted)
    assert (done.step1, done.job_change.status, done.job_change.exit_code) == (
        StepState.COMPLETED,
        JobStatus.SUCCESS,
        0,
    )
    failed = decide(model, job, JobObservation(JobEvent.FAILED, 3, "CONTAINER_EXIT_3", "boom"))
    assert isinstance(failed, Accepted)
    assert (failed.step1, failed.job_change.status, failed.job_change.exit_code) == (
        StepState.ERROR,
        JobStatus.FAILED,
        3,
    )
    assert failed.last_error == "CONTAINER_EXIT_3" and failed.job_change.error_message == "boom"
    lost = decide(model, job, JobObservation(JobEvent.LOST, error="SERVER_RESTART_X"))
    assert isinstance(lost, Accepted)
    assert (lost.step1, lost.job_change.status, lost.job_change.exit_code) == (
        StepState.STOPPED,
        JobStatus.STOPPED,
        -1,
    )


def test_failed_test_leaves_the_model_completed() -> None:
    model = _running_model(JobType.EVAL)
    job = JobSnapshot(8, JobType.EVAL, JobStatus.RUNNING, is_current=True)
    failed = decide(model, job, JobObservation(JobEvent.FAILED, 1, "CONTAINER_EXIT_1"))
    assert isinstance(failed, Accepted)
    assert derive_model_status(failed.step1, failed.step2) is ModelStatus.COMPLETED
    assert failed.step2 is StepState.ERROR


def test_observation_of_an_old_attempt_is_refused() -> None:
    job = JobSnapshot(3, JobType.TRAIN, JobStatus.RUNNING, is_current=False)
    decision = decide(_running_model(JobType.TRAIN), job, JobObservation(JobEvent.SUCCEEDED))
    assert isinstance(decision, Rejected) and decision.reason is Reason.NOT_CURRENT_JOB


def test_korean_names() -> None:
    assert [s.display_name for s in StepState] == ["대기", "진행중", "완료", "중단됨", "오류"]
    assert [s.display_name for s in JobStatus] == [
        "대기중",
        "실행중",
        "성공",
        "실패",
        "중단됨",
        "취소",
    ]
