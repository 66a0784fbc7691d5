"""Issue 11 item 2: a launch that ran no container is named for its cause, and a command that
could only fail the same way again is refused (and not offered)."""

from __future__ import annotations

import pytest

from app.domain.completion import (
    DATASET_NOT_FOUND,
    IMAGE_NOT_FOUND,
    ContainerEnd,
    judge,
    launch_error,
)
from app.domain.states import StepState
from app.domain.transitions import (
    Accepted,
    Command,
    CommandRequest,
    JobEvent,
    ModelSnapshot,
    Reason,
    Rejected,
    allowed_commands,
    decide,
)
from app.services.images import normalize_image

ERROR = dict(step1=StepState.ERROR, step2=StepState.READY, total_epoch=4, val_interval=2)


def test_a_launch_failure_is_judged_by_its_cause_not_by_dockers_125() -> None:
    error = launch_error(IMAGE_NOT_FOUND, "image 'me/x:1' is not on node n1")
    seen = judge(ContainerEnd(125, False), None, f"{error}\n", launch_failure=error)
    assert (seen.event, seen.exit_code, seen.error) == (
        JobEvent.FAILED,
        125,
        "IMAGE_NOT_FOUND: image 'me/x:1' is not on node n1",
    )
    # Without the launcher's word, 125 is what the container exited with (its own choice).
    assert judge(ContainerEnd(125, False), None, "tail").error == "CONTAINER_EXIT_125"


def test_launch_error_is_one_short_line_with_a_known_code() -> None:
    long = launch_error(DATASET_NOT_FOUND, "dataset 'x'\nis gone " + "y" * 500)
    assert long.startswith("DATASET_NOT_FOUND: dataset 'x' is gone y") and "\n" not in long
    assert len(long) <= 200 + len(DATASET_NOT_FOUND) + 2
    with pytest.raises(ValueError, match="unknown"):
        launch_error("CONTAINER_EXIT_1", "a container's own code is no launch error")


def test_no_command_that_starts_a_container_while_no_live_node_has_the_image() -> None:
    missing = "image 'me/x:1' is on no live node (nodes: n1)"
    model = ModelSnapshot(**ERROR, image_missing=missing)
    assert allowed_commands(model) == []  # restart is not offered
    refused = decide(model, None, CommandRequest(Command.RESTART))
    assert isinstance(refused, Rejected) and refused.reason is Reason.IMAGE_NOT_FOUND
    assert "me/x:1" in refused.message
    assert Command.RESTART in allowed_commands(ModelSnapshot(**ERROR))  # once a node has it

    ready = ModelSnapshot(StepState.READY, StepState.READY, 4, 2, image_missing=missing)
    assert isinstance(decide(ready, None, CommandRequest(Command.RUN)), Rejected)
    done = ModelSnapshot(StepState.COMPLETED, StepState.READY, 4, 2, checkpoint_epoch=4)
    assert Command.TEST_RUN in allowed_commands(done)
    assert allowed_commands(ModelSnapshot(**{**done.__dict__, "image_missing": missing})) == []


def test_settings_a_node_refused_are_not_tried_again() -> None:
    refused = "INVALID_RUNTIME_SETTINGS: the engine refused the container's settings: cpus"
    model = ModelSnapshot(**ERROR, last_error=refused)
    assert allowed_commands(model) == []
    answer = decide(model, None, CommandRequest(Command.RESTART))
    assert isinstance(answer, Rejected) and answer.reason is Reason.SETTINGS_REFUSED
    assert "new model" in answer.message
    # Other launch failures can be fixed outside the model: restart stays.
    dataset = ModelSnapshot(**ERROR, last_error="DATASET_NOT_FOUND: dataset 'd' is gone")
    assert isinstance(decide(dataset, None, CommandRequest(Command.RESTART)), Accepted)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("python", "python:latest"),
        ("docker.io/library/python:3.12", "python:3.12"),
        ("trainyard/example-pytorch", "trainyard/example-pytorch:latest"),
        ("localhost:5000/team/img", "localhost:5000/team/img:latest"),
        ("localhost:5000/team/img:v2", "localhost:5000/team/img:v2"),
        ("me/x@sha256:abc", "me/x@sha256:abc"),
    ],
)
def test_image_names_compare_as_docker_images_shows_them(given: str, shown: str) -> None:
    assert normalize_image(given) == shown
