"""`allowedCommands` on list and detail is exactly what `decide()` accepts, for every pair of
step states, with and without a checkpoint: the API serves the domain's rules, not a copy."""

from __future__ import annotations

import itertools

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app.domain.states import StepState, derive_model_status
from app.domain.transitions import (
    COMMAND_RULES,
    Accepted,
    CommandRequest,
    ModelSnapshot,
    decide,
)
from tests.integration.helpers import create_model, force_states

STATE_PAIRS = list(itertools.product(StepState, StepState))
CHECKPOINTS = (None, 2)


def accepted_by_decide(snapshot: ModelSnapshot) -> set[str]:
    """Every command decide() accepts, asking a test run for each epoch in turn."""
    accepted = set()
    for command in COMMAND_RULES:
        epochs = range(1, snapshot.total_epoch + 1) if command.api_name == "testRun" else [None]
        if any(
            isinstance(decide(snapshot, None, CommandRequest(command, epoch)), Accepted)
            for epoch in epochs
        ):
            accepted.add(command.api_name)
    return accepted


def test_allowed_commands_equal_what_decide_accepts(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    expected: dict[str, set[str]] = {}
    for (step1, step2), checkpoint in itertools.product(STATE_PAIRS, CHECKPOINTS):
        model = create_model(client, memo=f"{step1}/{step2}/{checkpoint}")
        force_states(
            db,
            model["id"],
            step1_state=step1.value,
            step2_state=step2.value,
            status_cd=derive_model_status(step1, step2).value,
            checkpoint_epoch=checkpoint,
        )
        snapshot = ModelSnapshot(
            step1, step2, total_epoch=4, val_interval=2, checkpoint_epoch=checkpoint
        )
        expected[model["uuid"]] = accepted_by_decide(snapshot)

    listed = client.get(f"/api/models/list?size={len(expected)}").get_json()["data"]["content"]
    assert len(listed) == len(expected) == 50
    for item in listed:
        assert set(item["allowedCommands"]) == expected[item["uuid"]], item["memo"]
        detail = client.get(f"/api/models/{item['uuid']}").get_json()["data"]
        assert detail["allowedCommands"] == item["allowedCommands"]

    # The table is not trivially empty or full: every command shows up somewhere, and a
    # fresh model allows exactly run.
    seen = set().union(*expected.values())
    assert seen == {c.api_name for c in COMMAND_RULES}
    fresh = create_model(client)
    assert fresh["allowedCommands"] == ["run"]
