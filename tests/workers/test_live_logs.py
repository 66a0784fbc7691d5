"""Live logs and stalls on the real stack: a worker process, the Docker engine, the reference
trainer image, PostgreSQL and the API (issue 11, items 4 and 1's stallTimeoutS).

- the log is followed (server-sent events) while the container runs, and a reconnect with
  Last-Event-ID goes on without losing or repeating a line;
- a trainer that prints nothing and makes no progress for stallTimeoutS is ended STALLED,
  its log kept;
- a cancelled job shows its container's own exit code (143, SIGTERM) beside exitCode -1.
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job
from tests.integration.helpers import create_model, sse_events, sse_lines
from tests.workers.conftest import model_of, wait_for_status, wait_running, wait_until

FAST_LOGS = {"LOG_COLLECT_INTERVAL_S": "0.2"}


def _container_ended(db: sessionmaker[Session], job_id: int) -> bool:
    with db() as session:
        return session.get_one(Job, job_id).container_ended_dttm is not None


def test_follow_reads_lines_while_the_container_runs_and_resumes_after_a_reconnect(
    client: FlaskClient, workers: Any, trainer_image: str, db: sessionmaker[Session]
) -> None:
    workers("node-a", **FAST_LOGS)
    model = create_model(client, params={"total_epoch": 6, "val_interval": 1, "epoch_seconds": 1})
    uid = model["uuid"]
    job_id = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"]
    wait_running(client, uid)

    first = client.get(f"/api/models/{uid}/logs?follow=1&jobId={job_id}", buffered=False)
    assert first.mimetype == "text/event-stream"
    early = sse_lines(sse_events(first), 2)  # the trainer's start line and its first epoch
    assert not _container_ended(db, job_id)  # received while the container still runs
    first.close()  # the connection drops

    again = client.get(
        f"/api/models/{uid}/logs?follow=1&jobId={job_id}",
        headers={"Last-Event-ID": early[-1]["id"]},
        buffered=False,
    )
    rest = list(sse_events(again))
    again.close()
    assert rest[-1].get("event") == "end"  # the container ended and every line was sent
    late = [e for e in rest if "id" in e]
    followed = [e["data"] for e in early + late]

    stored = client.get(f"/api/models/{uid}/logs/download?jobId={job_id}").get_data(as_text=True)
    assert followed == stored.splitlines()  # not one line lost, not one repeated
    assert sum("epoch" in line for line in followed) >= 6
    offsets = [int(e["id"]) for e in early + late]
    assert offsets == sorted(set(offsets)) and offsets[-1] == len(stored.encode())
    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 60)
    assert done["jobs"][-1]["containerExitCode"] == 0


def test_a_stalling_trainer_is_ended_stalled_with_its_log_kept(
    client: FlaskClient, workers: Any, trainer_image: str
) -> None:
    workers("node-a", **FAST_LOGS)
    # Each epoch waits 120 s without a word: after its start line, nothing is printed and
    # progress.json does not change.
    model = create_model(
        client,
        params={"total_epoch": 2, "val_interval": 1, "epoch_seconds": 120},
        stallTimeoutS=3,
    )
    uid = model["uuid"]
    job = client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]
    ended = wait_for_status(client, uid, "step1Status", "ERROR", 60)
    assert ended["lastError"].startswith("STALLED: no log output and no progress.json change")
    attempt = ended["jobs"][-1]
    assert (attempt["statusCd"], attempt["exitCode"]) == ("FAILED", -1)
    # The trainer was stopped (SIGTERM): its own code is 143.
    final = wait_until(
        lambda: (m := model_of(client, uid))["jobs"][-1]["containerExitCode"] is not None and m,
        30,
        "the container's end recorded",
    )
    assert final["jobs"][-1]["containerExitCode"] == 143
    kept = client.get(f"/api/models/{uid}/logs?offset=0&jobId={job['id']}").get_json()["data"]
    assert "trainer: TRAIN epochs" in kept["text"] and kept["complete"]
    assert "trainer: stopped by signal 15" in kept["text"]
    answer = client.get(f"/api/models/{uid}/logs").get_json()["data"]
    assert "trainer: TRAIN epochs" in (answer["logTail"] or "")


def test_a_cancelled_job_shows_its_containers_own_exit_code(
    client: FlaskClient, workers: Any, trainer_image: str
) -> None:
    workers("node-a", **FAST_LOGS)
    model = create_model(client, params={"total_epoch": 5, "val_interval": 1, "epoch_seconds": 30})
    uid = model["uuid"]
    client.post(f"/api/train/run/{uid}")
    wait_running(client, uid)
    client.post(f"/api/train/cancel/{uid}")
    final = wait_until(
        lambda: (m := model_of(client, uid))["jobs"][-1]["containerExitCode"] is not None and m,
        30,
        "the container's end recorded",
    )
    job = final["jobs"][-1]
    assert (job["statusCd"], job["exitCode"], job["containerExitCode"]) == ("CANCELED", -1, 143)
