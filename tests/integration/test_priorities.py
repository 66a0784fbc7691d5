"""Priorities (issue 14 item 2), on real PostgreSQL and Redis, without a worker process: jobs
waiting for capacity launch highest priority first and first in, first out within one; a
command can give its own job a priority; the API shows each waiting job's place."""

from __future__ import annotations

from dataclasses import replace

import redis
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job
from app.domain.timefmt import utcnow
from tests.integration.helpers import CAPACITY_NODE as NODE
from tests.integration.helpers import create_model, queued_tasks
from tests.integration.test_capacity_claims import _claim_at_once, _claimed
from workers.context import WorkerContext
from workers.launcher import Claim, claim_job
from workers.requeue import wake_waiting


def _run(client: FlaskClient, uid: str, **body: object) -> dict:
    reply = client.post(f"/api/train/run/{uid}", json=body) if body else client.post(
        f"/api/train/run/{uid}"
    )
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["data"]


def _free_slot(db: sessionmaker[Session], job_id: int) -> None:
    """The job's container is confirmed removed: its slot is free again."""
    with db() as session, session.begin():
        gone = update(Job).where(Job.id == job_id).values(container_gone_dttm=utcnow())
        session.execute(gone)


def _woken(broker: redis.Redis) -> list[int]:
    woken = [t["kwargs"]["job_id"] for t in queued_tasks(broker, f"node.{NODE}")]
    broker.delete(f"node.{NODE}")
    return woken


def test_one_slot_and_priorities_1_5_5_launch_5_5_then_1(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis, node_ctx: WorkerContext
) -> None:
    node_ctx.node = replace(node_ctx.node, max_jobs=1)
    uids = [create_model(client, priority=p)["uuid"] for p in (1, 5, 5)]
    low, high, high_later = (_run(client, uid)["job"]["id"] for uid in uids)
    places = [client.get(f"/api/models/{uid}").get_json()["data"]["queuePosition"] for uid in uids]
    assert places == [3, 1, 2]
    broker.delete(f"node.{NODE}")

    answers = _claim_at_once(node_ctx, [low, high, high_later])
    assert _claimed(db) == [high], answers
    assert isinstance(answers[high], Claim)
    _woken(broker)  # the yielding claims sent `high` here again: already claimed

    launched = [high]
    for _ in range(2):
        _free_slot(db, launched[-1])
        assert wake_waiting(node_ctx) == 1
        (woken,) = _woken(broker)
        assert isinstance(claim_job(node_ctx, woken), Claim)
        launched.append(woken)
    assert launched == [high, high_later, low]


def test_a_lower_priority_job_yields_the_free_slot_and_says_why(
    client: FlaskClient, broker: redis.Redis, node_ctx: WorkerContext
) -> None:
    node_ctx.node = replace(node_ctx.node, max_jobs=1)
    low = _run(client, create_model(client, priority=1)["uuid"])["job"]["id"]
    high = _run(client, create_model(client, priority=5)["uuid"])["job"]["id"]
    broker.delete(f"node.{NODE}")
    answer = claim_job(node_ctx, low)
    assert answer == f"waiting: job {high} has a higher priority and takes the free slot first"
    assert _woken(broker) == [high]


def test_a_command_can_give_its_job_a_priority(client: FlaskClient) -> None:
    first = create_model(client)
    assert first["priority"] == 0, "the default"
    _run(client, first["uuid"])
    urgent = create_model(client)
    job = _run(client, urgent["uuid"], priority=9)["job"]
    assert job["priority"] == 9
    assert job["queuePosition"] == 1, "ahead of the earlier job of priority 0"
    detail = client.get(f"/api/models/{first['uuid']}").get_json()["data"]
    assert detail["queuePosition"] == 2
    assert detail["jobs"][-1]["priority"] == 0


def test_a_bad_priority_is_a_400_naming_it(client: FlaskClient) -> None:
    for bad in (1001, -1001, "5", 1.5, None):
        reply = client.post("/api/models", json=_model_body(priority=bad))
        assert reply.status_code == 400, bad
        assert "priority" in reply.get_json()["error"]["message"], bad
    uid = create_model(client)["uuid"]
    for body in ({"priority": "high"}, {"priority": 2000}, {"urgent": True}):
        reply = client.post(f"/api/train/run/{uid}", json=body)
        assert reply.status_code == 400, body
        message = reply.get_json()["error"]["message"]
        assert "priority" in message or "urgent" in message, body
        (field,) = body  # the field this body got wrong is the one named
        assert field in message, (body, message)
    detail = client.get(f"/api/models/{uid}").get_json()["data"]
    assert detail["statusCd"] == "READY", "a refused command changes nothing"


def _model_body(**extra: object) -> dict:
    return {
        "modelNo": "G1",
        "modelVer": "v1",
        "params": {"total_epoch": 2},
        **extra,
    }
