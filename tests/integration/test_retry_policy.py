"""Automatic retry (issue 14, item 1) at the API, on real PostgreSQL and Redis: the policy is
validated on create, an ending it covers starts the next attempt in the same commit (a resume
from the latest checkpoint, else a restart), the model stays IN_PROGRESS with a visible
sub-status, the budget and the thrash guard stop it with the seed's end state, and a cancel
during a pending retry wins. Workers are stood in for by their reports (record_observation)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import messaging
from app.db.models import OutboxMessage, WebhookEvent
from app.domain.transitions import JobEvent, JobObservation
from app.services.observations import record_observation, record_progress
from tests.integration.helpers import create_model

EXIT_3 = JobObservation(JobEvent.FAILED, 3, "CONTAINER_EXIT_3", "Traceback: boom")
NODE_LOST = JobObservation(
    JobEvent.LOST, -1, "NODE_LOST_OUTPUT_INCOMPLETE: val.csv-lines-mismatch"
)


def _running(client: FlaskClient, **kwargs: Any) -> str:
    """A model made with `kwargs` (create_model's) whose run was asked for: its uuid."""
    uid = create_model(client, **kwargs)["uuid"]
    assert client.post(f"/api/train/run/{uid}").status_code == 200
    return uid


def _detail(client: FlaskClient, uid: str) -> dict[str, Any]:
    return client.get(f"/api/models/{uid}").get_json()["data"]


def _end_current(
    db: sessionmaker[Session], client: FlaskClient, uid: str, ending: JobObservation
) -> dict[str, Any]:
    """The current attempt starts, then ends as `ending` (a node's two reports)."""
    job_id = _detail(client, uid)["currentAttemptId"]
    record_observation(db, None, job_id, JobObservation(JobEvent.STARTED))
    assert record_observation(db, None, job_id, ending).accepted
    return _detail(client, uid)


@pytest.mark.parametrize(
    ("retry", "named"),
    [
        ({"max": 2, "on": ["NODE_LOST", "REBOOT"]}, "retry.on.1"),
        ({"max": 21, "on": ["OOM"]}, "retry.max"),
        ({"max": -1, "on": ["OOM"]}, "retry.max"),
        ({"max": 1, "on": ["EXIT:x"]}, "retry.on.0"),
        ({"max": 1, "on": ["EXIT:0"]}, "retry.on.0"),
        ({"max": 1}, "retry.on"),
        ({"max": 1, "on": [], "window": 3}, "retry.window"),
        ("3 times", "retry"),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field(
    client: FlaskClient, retry: object, named: str
) -> None:
    body = {"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 2}, "retry": retry}
    reply = client.post("/api/models", json=body)
    assert reply.status_code == 400, reply.get_json()
    assert reply.get_json()["error"]["message"].startswith(f"{named}:"), reply.get_json()


def test_the_policy_is_stored_and_served(client: FlaskClient) -> None:
    model = create_model(client, retry={"max": 3, "on": ["NODE_LOST", "EXIT:3", "NODE_LOST"]})
    assert model["retryPolicy"] == {"max": 3, "on": ["NODE_LOST", "EXIT:3"]}
    assert model["retryStatus"] is None
    assert create_model(client)["retryPolicy"] is None


def test_the_policy_can_be_set_and_cleared_later(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid = create_model(client)["uuid"]
    client.post(f"/api/train/run/{uid}")  # a policy set while the run goes on applies to it
    reply = client.post(f"/api/models/{uid}/retry", json={"retry": {"max": 1, "on": ["OOM"]}})
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["data"]["retryPolicy"] == {"max": 1, "on": ["OOM"]}
    oom = JobObservation(JobEvent.FAILED, 137, "OOM_KILLED", "Killed")
    assert _end_current(db, client, uid, oom)["retryStatus"] == "retrying (1/1) after OOM"

    bad = client.post(f"/api/models/{uid}/retry", json={"retry": {"max": 1, "on": ["EXIT:"]}})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["message"].startswith("retry.on.0:")
    cleared = client.post(f"/api/models/{uid}/retry", json={"retry": None})
    assert cleared.get_json()["data"]["retryPolicy"] is None
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.post(f"/api/models/{unknown}/retry", json={"retry": None}).status_code == 404


def test_without_a_policy_an_ending_stays_as_the_seed_has_it(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid = _running(client)
    ended = _end_current(db, client, uid, EXIT_3)
    assert (ended["statusCd"], ended["lastError"], ended["retryStatus"]) == (
        "ERROR", "CONTAINER_EXIT_3", None
    )  # fmt: skip
    assert [j["statusCd"] for j in ended["jobs"]] == ["FAILED"]
    assert ended["jobs"][0]["retryNote"] is None


def test_a_covered_failure_is_retried_until_the_budget_is_spent(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid = _running(client, retry={"max": 2, "on": ["EXIT:3"]})

    first = _end_current(db, client, uid, EXIT_3)
    assert first["statusCd"] == "IN_PROGRESS" and first["step1Status"] == "IN_PROGRESS"
    assert first["retryStatus"] == "retrying (1/2) after EXIT:3"
    assert first["lastError"] is None
    failed, retry = first["jobs"]
    assert (failed["statusCd"], failed["endCause"]) == ("FAILED", "EXIT:3")
    assert failed["retryNote"] == "retried as attempt 2 (from scratch)"  # no checkpoint
    assert (retry["statusCd"], retry["retryNumber"], retry["attempt"]) == ("QUEUED", 1, 2)
    assert first["currentAttemptId"] == retry["id"]
    assert "cancel" in first["allowedCommands"]
    with db() as session:  # its launch is queued in the same commit, as a resume's is
        launch = OutboxMessage.task_name == messaging.LAUNCH_JOB
        launches = session.scalars(select(OutboxMessage).where(launch))
        assert retry["id"] in [row.payload["job_id"] for row in launches]

    second = _end_current(db, client, uid, EXIT_3)
    assert second["retryStatus"] == "retrying (2/2) after EXIT:3"

    spent = _end_current(db, client, uid, EXIT_3)
    assert (spent["statusCd"], spent["step1Status"], spent["lastError"]) == (
        "ERROR", "ERROR", "CONTAINER_EXIT_3"
    )  # fmt: skip
    assert spent["retryStatus"] is None
    assert [j["statusCd"] for j in spent["jobs"]] == ["FAILED"] * 3
    assert [j["retryNumber"] for j in spent["jobs"]] == [None, 1, 2]
    assert spent["jobs"][-1]["retryNote"] == "not retried: retry budget spent (2/2)"

    # A user's restart begins a new run with its own budget.
    assert client.post(f"/api/train/restart/{uid}").status_code == 200
    again = _end_current(db, client, uid, EXIT_3)
    assert again["retryStatus"] == "retrying (1/2) after EXIT:3"


def test_a_lost_node_resumes_from_the_latest_checkpoint(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid = create_model(
        client, params={"total_epoch": 10, "val_interval": 2}, retry={"max": 1, "on": ["NODE_LOST"]}
    )["uuid"]
    job_id = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]
    record_observation(db, None, job_id, JobObservation(JobEvent.STARTED))
    record_progress(db, job_id, 5, 4)
    assert record_observation(db, None, job_id, NODE_LOST).accepted
    pending = _detail(client, uid)
    assert pending["retryStatus"] == "retrying (1/1) after NODE_LOST"
    assert pending["jobs"][-1]["params"]["resume_from"] == 4
    assert pending["jobs"][0]["endCause"] == "NODE_LOST"

    # The budget spent, a second loss ends as the seed has it: STOPPED, the cause kept.
    stopped = _end_current(db, client, uid, NODE_LOST)
    assert (stopped["statusCd"], stopped["lastError"]) == ("STOPPED", NODE_LOST.error)
    assert "resume" in stopped["allowedCommands"]


def test_an_unlisted_cause_and_a_repeated_report_are_not_retried(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid = _running(client, retry={"max": 3, "on": ["NODE_LOST"]})
    ended = _end_current(db, client, uid, EXIT_3)
    assert (ended["statusCd"], len(ended["jobs"])) == ("ERROR", 1)
    assert ended["jobs"][0]["retryNote"] == "not retried: EXIT:3 is not in the policy's causes"

    uid = _running(client, retry={"max": 3, "on": ["EXIT:3"]})
    job_id = _end_current(db, client, uid, EXIT_3)["jobs"][0]["id"]
    assert not record_observation(db, None, job_id, EXIT_3).accepted  # redelivered
    assert len(_detail(client, uid)["jobs"]) == 2, "one ending, one retry"


def test_the_thrash_guard_stops_retrying_early_and_says_so(
    client: FlaskClient, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_RETRY_THRASH_FAILURES", "2")
    monkeypatch.setenv("JOB_RETRY_THRASH_WINDOW_S", "600")
    uid = _running(client, retry={"max": 5, "on": ["EXIT:3"]})
    assert _end_current(db, client, uid, EXIT_3)["retryStatus"] == "retrying (1/5) after EXIT:3"
    stopped = _end_current(db, client, uid, EXIT_3)
    assert (stopped["statusCd"], stopped["lastError"], stopped["retryStatus"]) == (
        "ERROR", "CONTAINER_EXIT_3", None
    )  # fmt: skip
    assert "thrash guard, 2 failures within 600 s" in stopped["jobs"][-1]["retryNote"]


def test_a_cancel_during_a_pending_retry_wins(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid = _running(client, retry={"max": 3, "on": ["EXIT:3"]})
    pending = _end_current(db, client, uid, EXIT_3)
    retry_id = pending["jobs"][-1]["id"]

    reply = client.post(f"/api/train/cancel/{uid}")
    assert reply.status_code == 200, reply.get_json()
    canceled = _detail(client, uid)
    assert (canceled["statusCd"], canceled["lastError"], canceled["retryStatus"]) == (
        "STOPPED", "CANCELED_BY_USER", None
    )  # fmt: skip
    assert [j["statusCd"] for j in canceled["jobs"]] == ["FAILED", "CANCELED"]
    # A late report on the canceled retry changes nothing and starts nothing.
    assert not record_observation(db, None, retry_id, EXIT_3).accepted
    assert len(_detail(client, uid)["jobs"]) == 2


def test_the_list_shows_the_sub_status(client: FlaskClient, db: sessionmaker[Session]) -> None:
    uid = _running(client, retry={"max": 1, "on": ["EXIT:3"]})
    _end_current(db, client, uid, EXIT_3)
    listed = client.get("/api/models/list").get_json()["data"]["content"]
    assert [m["retryStatus"] for m in listed if m["uuid"] == uid] == [
        "retrying (1/1) after EXIT:3"
    ]


def test_a_retry_is_a_webhook_event_of_kind_retry(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    """The policy's new attempt is a status write like any other: its receivers hear of it,
    named as a retry (not as a command nobody gave)."""
    uid = create_model(
        client, retry={"max": 1, "on": ["EXIT:3"]}, webhookUrl="http://127.0.0.1:9/hook"
    )["uuid"]
    client.post(f"/api/train/run/{uid}")
    retried = _end_current(db, client, uid, EXIT_3)
    assert retried["retryStatus"] == "retrying (1/1) after EXIT:3"

    with db() as session:
        causes = [e.payload["cause"] for e in session.scalars(select(WebhookEvent))]
    kinds = [(c["kind"], c["name"]) for c in causes]
    assert ("retry", "retrying (1/1) after EXIT:3") in kinds, kinds
    assert kinds[0] == ("command", "run")
