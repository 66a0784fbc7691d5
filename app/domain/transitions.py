"""The state rules: which command or worker observation is allowed from which states, and
what it changes (SPEC §4, §5).

`decide()` is the only place that answers "may this happen?". It is pure: the service layer
hands it snapshots of the rows it has locked and writes back what the decision says.
Every rule is a named guard with a message a person can read; every outcome is an explicit
`Accepted` or `Rejected`, never a silent ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from app.domain.checkpoints import epoch_has_checkpoint
from app.domain.states import (
    JOB_TERMINAL,
    JobStatus,
    JobType,
    ModelStatus,
    StepState,
    derive_model_status,
)

CANCELED_BY_USER = "CANCELED_BY_USER"
INVALID_RUNTIME_SETTINGS = "INVALID_RUNTIME_SETTINGS"  # app.domain.completion's launch code
IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"  # a launch code too; the API refuses a command with it


class Command(StrEnum):
    """What a user asks for (SPEC §4)."""

    RUN = "run"
    RESTART = "restart"
    RESUME = "resume"
    CANCEL = "cancel"
    TEST_RUN = "test run"
    TEST_CANCEL = "test cancel"

    @property
    def api_name(self) -> str:
        """The name the API serves in `allowedCommands` ("testRun", …)."""
        first, *rest = self.value.split()
        return first + "".join(word.capitalize() for word in rest)


class JobEvent(StrEnum):
    """What a worker observed about one job (SPEC §5)."""

    STARTED = "started"  # its container is running
    SUCCEEDED = "succeeded"  # ended with complete outputs
    FAILED = "failed"  # ended with an error (exit code, OOM, incomplete outputs)
    LOST = "lost"  # its container vanished and the outputs are incomplete


class Reason(StrEnum):
    """Why a request was rejected; the API maps these to HTTP statuses."""

    STATE = "STATE_CONFLICT"  # 409
    NO_CHECKPOINT = "NO_CHECKPOINT"  # 409
    IMAGE_NOT_FOUND = IMAGE_NOT_FOUND  # 409: no live node has the model's image
    SETTINGS_REFUSED = INVALID_RUNTIME_SETTINGS  # 409: a node refused the model's settings
    JOB_ENDED = "JOB_ALREADY_ENDED"  # a stale or repeated observation: nothing to do
    NOT_CURRENT_JOB = "NOT_CURRENT_JOB"


@dataclass(frozen=True)
class ModelSnapshot:
    step1: StepState
    step2: StepState
    total_epoch: int
    val_interval: int
    checkpoint_epoch: int | None = None  # latest checkpoint the current training wrote
    # Why no live node could run the model's image now (app/services/images.py); None: one can.
    image_missing: str | None = None
    last_error: str | None = None

    @property
    def status(self) -> ModelStatus:
        return derive_model_status(self.step1, self.step2)


@dataclass(frozen=True)
class JobSnapshot:
    job_id: int
    job_type: JobType
    status: JobStatus
    is_current: bool  # is it the model's current attempt?


@dataclass(frozen=True)
class CommandRequest:
    command: Command
    epoch: int | None = None  # TEST_RUN only
    priority: int | None = None  # the new job's launch priority (None: the model's)


@dataclass(frozen=True)
class JobObservation:
    event: JobEvent
    exit_code: int | None = None
    error: str | None = None  # becomes last_error (e.g. "CONTAINER_EXIT_3")
    error_message: str | None = None  # the job's error_message (e.g. the log tail)
    # When the container itself started and ended, as its runtime reported them (SPEC §9:
    # times measure what they name); None when unknown, and the write uses its own clock.
    started_at: datetime | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class RetryRequest:
    """The platform's own new attempt after an ending its retry policy covers
    (app/domain/retry.py): never a user's command, so it is not in `allowedCommands`."""

    resume_from: int | None  # the latest checkpoint's epoch; None: train again from scratch
    sub_status: str  # "retrying (2/3) after NODE_LOST", shown while the attempt is live
    priority: int | None = None  # the ended job's launch priority, kept


Action = CommandRequest | JobObservation | RetryRequest


@dataclass(frozen=True)
class NewJob:
    job_type: JobType
    resume_from: int | None = None
    eval_epoch: int | None = None
    fresh_outputs: bool = False  # restart: set earlier outputs aside first


@dataclass(frozen=True)
class JobChange:
    """The new end (or running) state of the job the action is about."""

    status: JobStatus
    exit_code: int | None = None
    error_message: str | None = None


_KEEP = object()  # "leave last_error as it is"


@dataclass(frozen=True)
class Accepted:
    step1: StepState
    step2: StepState
    job_change: JobChange | None = None
    new_job: NewJob | None = None
    last_error: str | object | None = _KEEP
    reset_training: bool = False  # restart: best epoch, checkpoint, progress and metrics go
    started_step: int | None = None  # the step whose container just started
    ended_step: int | None = None  # the step whose job just ended
    stop_container: bool = False  # the job's container must be stopped (cancel)

    @property
    def keeps_last_error(self) -> bool:
        return self.last_error is _KEEP


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    message: str


Decision = Accepted | Rejected


# --- guards -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """A named precondition. `check` returns None when it holds, else the rejection."""

    name: str
    check: Callable[[ModelSnapshot, CommandRequest], Rejected | None]


def _model_in(*allowed: ModelStatus) -> Guard:
    wanted = " or ".join(s.value for s in allowed)

    def check(model: ModelSnapshot, request: CommandRequest) -> Rejected | None:
        if model.status in allowed:
            return None
        return Rejected(
            Reason.STATE,
            f"Can't {request.command} when the model is {model.status}; "
            f"{request.command} needs the model {wanted}.",
        )

    return Guard(f"model is {wanted}", check)


def _step_is(step: int, state: StepState, *, negate: bool = False) -> Guard:
    label = f"step{step} is {'not ' if negate else ''}{state}"

    def check(model: ModelSnapshot, request: CommandRequest) -> Rejected | None:
        current = model.step1 if step == 1 else model.step2
        if (current is state) != negate:
            return None
        return Rejected(
            Reason.STATE, f"Can't {request.command} when step{step} is {current}; needs {label}."
        )

    return Guard(label, check)


def _has_checkpoint_to_resume(model: ModelSnapshot, request: CommandRequest) -> Rejected | None:
    if model.checkpoint_epoch is not None:
        return None
    return Rejected(
        Reason.NO_CHECKPOINT,
        "Can't resume: the stopped training left no checkpoint. Use restart to train from scratch.",
    )


def _epoch_has_checkpoint(model: ModelSnapshot, request: CommandRequest) -> Rejected | None:
    epoch = request.epoch
    if epoch is not None and epoch_has_checkpoint(
        epoch, model.total_epoch, model.val_interval, model.checkpoint_epoch
    ):
        return None
    return Rejected(
        Reason.NO_CHECKPOINT,
        f"Can't test epoch {epoch}: it has no checkpoint. Checkpoints exist every "
        f"{model.val_interval} epochs and for the last epoch.",
    )


def _image_on_a_live_node(model: ModelSnapshot, request: CommandRequest) -> Rejected | None:
    """A command that starts a container is refused while it could only end IMAGE_NOT_FOUND."""
    if model.image_missing is None:
        return None
    return Rejected(Reason.IMAGE_NOT_FOUND, f"Can't {request.command}: {model.image_missing}")


def _settings_not_refused(model: ModelSnapshot, request: CommandRequest) -> Rejected | None:
    """A model whose runtime settings a node refused (INVALID_RUNTIME_SETTINGS) would only be
    refused again: a model's settings cannot change, so a new model is the way on."""
    if not (model.last_error or "").startswith(INVALID_RUNTIME_SETTINGS):
        return None
    return Rejected(
        Reason.SETTINGS_REFUSED,
        f"Can't {request.command}: the node refused this model's runtime settings "
        f"({model.last_error}). Register a new model with settings the nodes accept.",
    )


_IMAGE_GUARD = Guard("the image is on a live node", _image_on_a_live_node)
_SETTINGS_GUARD = Guard("no node refused the runtime settings", _settings_not_refused)


# --- the command table (SPEC §4) ------------------------------------------------------------


@dataclass(frozen=True)
class CommandRule:
    command: Command
    guards: tuple[Guard, ...]
    effect: Callable[[ModelSnapshot, CommandRequest], Accepted]


def _run(model: ModelSnapshot, request: CommandRequest) -> Accepted:
    return Accepted(
        step1=StepState.IN_PROGRESS,
        step2=model.step2,
        new_job=NewJob(JobType.TRAIN),
        last_error=None,
    )


def _restart(model: ModelSnapshot, request: CommandRequest) -> Accepted:
    return Accepted(
        step1=StepState.IN_PROGRESS,
        step2=StepState.READY,
        new_job=NewJob(JobType.TRAIN, fresh_outputs=True),
        last_error=None,
        reset_training=True,
    )


def _resume(model: ModelSnapshot, request: CommandRequest) -> Accepted:
    return Accepted(
        step1=StepState.IN_PROGRESS,
        step2=model.step2,
        new_job=NewJob(JobType.TRAIN, resume_from=model.checkpoint_epoch),
        last_error=None,
    )


def _cancel(model: ModelSnapshot, request: CommandRequest) -> Accepted:
    return Accepted(
        step1=StepState.STOPPED,
        step2=model.step2,
        job_change=JobChange(JobStatus.CANCELED, exit_code=-1, error_message=CANCELED_BY_USER),
        last_error=CANCELED_BY_USER,
        ended_step=1,
        stop_container=True,
    )


def _test_run(model: ModelSnapshot, request: CommandRequest) -> Accepted:
    return Accepted(
        step1=model.step1,
        step2=StepState.IN_PROGRESS,
        new_job=NewJob(JobType.EVAL, eval_epoch=request.epoch),
    )


def _test_cancel(model: ModelSnapshot, request: CommandRequest) -> Accepted:
    return Accepted(
        step1=model.step1,
        step2=StepState.STOPPED,
        job_change=JobChange(JobStatus.CANCELED, exit_code=-1, error_message=CANCELED_BY_USER),
        ended_step=2,
        stop_container=True,
    )


COMMAND_RULES: dict[Command, CommandRule] = {
    rule.command: rule
    for rule in (
        CommandRule(Command.RUN, (_model_in(ModelStatus.READY), _IMAGE_GUARD), _run),
        CommandRule(
            Command.RESTART,
            (_model_in(ModelStatus.STOPPED, ModelStatus.ERROR), _SETTINGS_GUARD, _IMAGE_GUARD),
            _restart,
        ),
        CommandRule(
            Command.RESUME,
            (
                _model_in(ModelStatus.STOPPED),
                Guard("a checkpoint exists", _has_checkpoint_to_resume),
                _SETTINGS_GUARD,
                _IMAGE_GUARD,
            ),
            _resume,
        ),
        CommandRule(Command.CANCEL, (_step_is(1, StepState.IN_PROGRESS),), _cancel),
        CommandRule(
            Command.TEST_RUN,
            (
                _step_is(1, StepState.COMPLETED),
                _step_is(2, StepState.IN_PROGRESS, negate=True),
                Guard("the epoch has a checkpoint", _epoch_has_checkpoint),
                _SETTINGS_GUARD,
                _IMAGE_GUARD,
            ),
            _test_run,
        ),
        CommandRule(Command.TEST_CANCEL, (_step_is(2, StepState.IN_PROGRESS),), _test_cancel),
    )
}

#: Commands that end the model's active job instead of creating one.
STOPPING_COMMANDS = frozenset({Command.CANCEL, Command.TEST_CANCEL})


# --- worker observations (SPEC §5) ------------------------------------------------------------

_STEP_AFTER = {
    JobEvent.SUCCEEDED: StepState.COMPLETED,
    JobEvent.FAILED: StepState.ERROR,
    JobEvent.LOST: StepState.STOPPED,
}
_JOB_AFTER = {
    JobEvent.SUCCEEDED: JobStatus.SUCCESS,
    JobEvent.FAILED: JobStatus.FAILED,
    JobEvent.LOST: JobStatus.STOPPED,
}


def _observe(model: ModelSnapshot, job: JobSnapshot, seen: JobObservation) -> Decision:
    if job.status in JOB_TERMINAL:
        return Rejected(Reason.JOB_ENDED, f"Job {job.job_id} already ended as {job.status}.")
    if not job.is_current:
        return Rejected(Reason.NOT_CURRENT_JOB, f"Job {job.job_id} is not the current attempt.")
    step = job.job_type.step
    steps = {1: model.step1, 2: model.step2}

    if seen.event is JobEvent.STARTED:
        if job.status is JobStatus.RUNNING:
            return Rejected(Reason.JOB_ENDED, f"Job {job.job_id} is already RUNNING.")
        return Accepted(
            step1=model.step1,
            step2=model.step2,
            job_change=JobChange(JobStatus.RUNNING),
            started_step=step,
        )

    steps[step] = _STEP_AFTER[seen.event]
    exit_code = seen.exit_code
    if exit_code is None:
        exit_code = 0 if seen.event is JobEvent.SUCCEEDED else -1
    return Accepted(
        step1=steps[1],
        step2=steps[2],
        job_change=JobChange(_JOB_AFTER[seen.event], exit_code, seen.error_message or seen.error),
        last_error=seen.error if seen.event is not JobEvent.SUCCEEDED else _KEEP,
        ended_step=step,
    )


def _retry(model: ModelSnapshot, request: RetryRequest) -> Decision:
    """Only right after the training ended for a cause (step1 ERROR or STOPPED) and no test
    runs: then a new attempt, as a resume (or a restart, without a checkpoint) would start."""
    if model.step1 not in (StepState.ERROR, StepState.STOPPED) or (
        model.step2 is StepState.IN_PROGRESS
    ):
        return Rejected(
            Reason.STATE,
            f"Can't retry when step1 is {model.step1} and step2 is {model.step2}; "
            "a retry follows a training that ended.",
        )
    if request.resume_from is not None:
        new_job = NewJob(JobType.TRAIN, resume_from=request.resume_from)
        return Accepted(StepState.IN_PROGRESS, model.step2, new_job=new_job, last_error=None)
    return Accepted(
        StepState.IN_PROGRESS,
        StepState.READY,
        new_job=NewJob(JobType.TRAIN, fresh_outputs=True),
        last_error=None,
        reset_training=True,
    )


def decide(model: ModelSnapshot, job: JobSnapshot | None, action: Action) -> Decision:
    """Answer whether `action` may happen now, and if so what changes.

    `job` is the job the action is about: the model's active job for a stopping command,
    the observed job for a worker observation, None otherwise.
    """
    if isinstance(action, JobObservation):
        if job is None:
            raise ValueError("a job observation needs the observed job")
        return _observe(model, job, action)
    if isinstance(action, RetryRequest):
        return _retry(model, action)

    rule = COMMAND_RULES[action.command]
    for guard in rule.guards:
        rejection = guard.check(model, action)
        if rejection is not None:
            return rejection
    return rule.effect(model, action)


def allowed_commands(model: ModelSnapshot) -> list[Command]:
    """The commands `decide()` accepts for this model now, in table order.

    A test run is asked for the latest checkpoint's epoch: when any epoch can be tested, that
    one can. What the API serves and the dashboard draws comes from here, never a copy.
    """
    allowed = []
    for command in COMMAND_RULES:
        epoch = model.checkpoint_epoch if command is Command.TEST_RUN else None
        if isinstance(decide(model, None, CommandRequest(command, epoch)), Accepted):
            allowed.append(command)
    return allowed
