"""Twenty threads sending commands to one model at once, on real PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections import Counter

import redis
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, Model
from app.domain.states import JOB_ACTIVE, StepState, derive_model_status
from tests.integration.helpers import create_model, queued_tasks

THREADS = 20


def _fire(app: Flask, paths: list[str], headers: dict[str, str] | None = None) -> list[tuple]:
    """POST each path from its own thread, all released together; (path, status) pairs."""
    barrier = threading.Barrier(len(paths))
    results: list[tuple] = [None] * len(paths)  # type: ignore[list-item]

    def worker(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(paths[i], headers=headers or {})
        results[i] = (paths[i].split("/")[3], response.status_code)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _assert_consistent(db: sessionmaker[Session]) -> None:
    with db() as session:
        model = session.scalars(select(Model)).one()
        jobs = list(session.scalars(select(Job).order_by(Job.id)))
    assert model.status_cd == derive_model_status(
        StepState(model.step1_state), StepState(model.step2_state)
    )
    live = [j for j in jobs if j.status in JOB_ACTIVE]
    assert len(live) <= 1, "a model never has two live jobs"
    if live:
        assert model.current_attempt_id == live[0].id
        assert model.step1_state == "IN_PROGRESS"
    assert [j.attempt for j in jobs] == list(range(1, len(jobs) + 1))


def test_twenty_runs_at_once_exactly_one_wins(
    app: Flask, db: sessionmaker[Session], broker: redis.Redis
) -> None:
    model = create_model(app.test_client())
    results = _fire(app, [f"/api/train/run/{model['uuid']}"] * THREADS)
    assert Counter(status for _, status in results) == {200: 1, 409: THREADS - 1}
    with db() as session:
        assert len(list(session.scalars(select(Job)))) == 1
    assert len(queued_tasks(broker, "launch.cpu")) == 1
    _assert_consistent(db)


def test_twenty_cancels_at_once_exactly_one_wins(
    app: Flask, db: sessionmaker[Session], broker: redis.Redis
) -> None:
    client = app.test_client()
    model = create_model(client)
    client.post(f"/api/train/run/{model['uuid']}")
    results = _fire(app, [f"/api/train/cancel/{model['uuid']}"] * THREADS)
    assert Counter(status for _, status in results) == {200: 1, 409: THREADS - 1}
    _assert_consistent(db)


def test_twenty_double_clicks_with_one_key_give_one_answer(
    app: Flask, db: sessionmaker[Session], broker: redis.Redis
) -> None:
    model = create_model(app.test_client())
    results = _fire(
        app, [f"/api/train/run/{model['uuid']}"] * THREADS, headers={"Idempotency-Key": "k-1"}
    )
    assert Counter(status for _, status in results) == {200: THREADS}
    with db() as session:
        assert len(list(session.scalars(select(Job)))) == 1
    assert len(queued_tasks(broker, "launch.cpu")) == 1


def test_mixed_commands_keep_the_rows_consistent(
    app: Flask, db: sessionmaker[Session], broker: redis.Redis
) -> None:
    model = create_model(app.test_client())
    rng = random.Random(7)
    commands = [rng.choice(["run", "restart", "resume", "cancel"]) for _ in range(THREADS)]
    commands[0] = "run"
    results = _fire(app, [f"/api/train/{c}/{model['uuid']}" for c in commands])
    assert all(status in (200, 409) for _, status in results), results
    won = Counter(command for command, status in results if status == 200)
    assert won["run"] == 1  # run only from READY, and READY never comes back
    with db() as session:
        jobs = list(session.scalars(select(Job)))
    assert len(jobs) == won["run"] + won["restart"] + won["resume"]
    assert sum(j.status_cd == "CANCELED" for j in jobs) == won["cancel"]
    assert len(queued_tasks(broker, "launch.cpu")) == len(jobs)
    _assert_consistent(db)
