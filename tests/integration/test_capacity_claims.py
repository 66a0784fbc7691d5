"""Capacity at the claim (issue 12 #5), on real PostgreSQL and Redis, without a worker process:
concurrent claims on one node never take more than its slots, waiting counts no attempt, the
oldest waiting job is woken when a slot frees, and the API shows each waiting job's place."""

from __future__ import annotations

import threading
from dataclasses import replace

import redis
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, Node
from app.domain.timefmt import utcnow
from tests.integration.helpers import CAPACITY_NODE as NODE
from tests.integration.helpers import create_model, queued_tasks
from workers.context import WorkerContext
from workers.heartbeat import beat
from workers.launcher import Claim, claim_job
from workers.requeue import wake_waiting


def _queue_jobs(client: FlaskClient, count: int, **model: object) -> list[int]:
    """`count` runs, QUEUED in this order; no worker consumes their launch messages."""
    job_ids = []
    for _ in range(count):
        uid = create_model(client, **model)["uuid"]
        job_ids.append(client.post(f"/api/train/run/{uid}").get_json()["data"]["job"]["id"])
    return job_ids


def _claimed(db: sessionmaker[Session]) -> list[int]:
    with db() as session:
        return list(session.scalars(select(Job.id).where(Job.node == NODE).order_by(Job.id)))


def _claim_at_once(ctx: WorkerContext, job_ids: list[int]) -> dict[int, object]:
    """Claim every job on its own thread, all released at the same moment."""
    start = threading.Barrier(len(job_ids))
    answers: dict[int, object] = {}

    def claim(job_id: int) -> None:
        start.wait()
        answers[job_id] = claim_job(ctx, job_id)

    threads = [threading.Thread(target=claim, args=(job_id,)) for job_id in reversed(job_ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_concurrent_claims_on_one_node_never_take_more_than_its_slots(
    client: FlaskClient, db: sessionmaker[Session], node_ctx: WorkerContext
) -> None:
    job_ids = _queue_jobs(client, 6)
    with db() as session, session.begin():
        # Every job in its retry backoff: none is "older and due", so nothing yields and only
        # the node's row lock keeps six simultaneous claims from all seeing a free slot.
        session.execute(update(Job).values(launch_attempts=1, last_attempt_dttm=utcnow()))

    answers = _claim_at_once(node_ctx, job_ids)

    claimed = _claimed(db)
    assert len(claimed) == 2, answers
    assert sorted(j for j, a in answers.items() if isinstance(a, Claim)) == claimed
    for job_id in set(job_ids) - set(claimed):
        assert answers[job_id] == f"waiting: node {NODE} is full (2 of NODE_MAX_JOBS=2 jobs)"
    with db() as session:
        attempts = dict(session.execute(select(Job.id, Job.launch_attempts)).all())
    assert {j: attempts[j] for j in claimed} == {j: 2 for j in claimed}
    assert {attempts[j] for j in set(job_ids) - set(claimed)} == {1}, "waiting is no attempt"


def test_concurrent_claims_go_oldest_first_and_the_rest_are_woken_in_order(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis, node_ctx: WorkerContext
) -> None:
    job_ids = _queue_jobs(client, 6)
    answers = _claim_at_once(node_ctx, job_ids)

    claimed = _claimed(db)
    assert claimed in (job_ids[:1], job_ids[:2]), answers  # a newer job yields to an older one
    for job_id in job_ids[len(claimed) :]:
        assert str(answers[job_id]).startswith("waiting: "), answers[job_id]
    with db() as session:
        assert set(session.scalars(select(Job.launch_attempts))) <= {0, 1}

    broker.delete(f"node.{NODE}")
    wake_waiting(node_ctx)  # what the launch does after its claim, while room is left
    woken = [t["kwargs"]["job_id"] for t in queued_tasks(broker, f"node.{NODE}")]
    assert woken == job_ids[len(claimed) : 2]


def test_a_job_waits_for_memory_and_one_too_big_for_the_node_is_left_to_others(
    client: FlaskClient, db: sessionmaker[Session], node_ctx: WorkerContext
) -> None:
    node_ctx.node = replace(node_ctx.node, memory_mb=3000)
    first, second = _queue_jobs(client, 2, resources={"memory_mb": 2048})
    (huge,) = _queue_jobs(client, 1, resources={"memory_mb": 4000})

    assert isinstance(claim_job(node_ctx, first), Claim)
    answer = claim_job(node_ctx, second)
    assert answer == (
        f"waiting: node {NODE} has 952 of NODE_MEMORY_MB=3000 MiB free; the job asks 2048"
    )
    assert claim_job(node_ctx, huge) == (
        f"job {huge} never fits here: it asks 4000 MiB; node {NODE} has NODE_MEMORY_MB=3000"
    )
    assert _claimed(db) == [first]


def test_a_freed_slot_wakes_the_oldest_waiting_job_on_this_node(
    client: FlaskClient,
    db: sessionmaker[Session],
    broker: redis.Redis,
    node_ctx: WorkerContext,
) -> None:
    job_ids = _queue_jobs(client, 4)
    assert all(isinstance(claim_job(node_ctx, j), Claim) for j in job_ids[:2])
    assert wake_waiting(node_ctx) == 0, "the node is full: nobody to wake"

    with db() as session, session.begin():  # the first job's container is removed
        gone = update(Job).where(Job.id == job_ids[0]).values(container_gone_dttm=utcnow())
        session.execute(gone)
    assert wake_waiting(node_ctx) == 1

    woken = [t["kwargs"]["job_id"] for t in queued_tasks(broker, f"node.{NODE}")]
    assert woken == [job_ids[2]], "one slot: the oldest waiting job, sent to this node"
    assert isinstance(claim_job(node_ctx, job_ids[2]), Claim)


def test_a_newer_job_yields_a_free_slot_to_an_older_waiting_one(
    client: FlaskClient, db: sessionmaker[Session], broker: redis.Redis, node_ctx: WorkerContext
) -> None:
    older, newer = _queue_jobs(client, 2)
    node_ctx.node = replace(node_ctx.node, max_jobs=1)
    answer = claim_job(node_ctx, newer)  # the older one's message was consumed while full
    assert answer == f"waiting: job {older} was queued earlier and takes the free slot first"
    woken = [t["kwargs"]["job_id"] for t in queued_tasks(broker, f"node.{NODE}")]
    assert woken == [older]
    assert isinstance(claim_job(node_ctx, older), Claim)
    assert _claimed(db) == [older]


def test_the_api_shows_each_waiting_jobs_place_in_the_queue(client: FlaskClient) -> None:
    uids = [create_model(client)["uuid"] for _ in range(3)]
    for uid in uids:
        reply = client.post(f"/api/train/run/{uid}").get_json()["data"]
        assert reply["job"]["queuePosition"] is not None
    detail = [client.get(f"/api/models/{uid}").get_json()["data"] for uid in uids]
    assert [d["queuePosition"] for d in detail] == [1, 2, 3]
    assert [d["jobs"][-1]["queuePosition"] for d in detail] == [1, 2, 3]
    listed = client.get("/api/models/list").get_json()["data"]["content"]
    places = {m["uuid"]: m["queuePosition"] for m in listed}
    assert places == dict(zip(uids, [1, 2, 3], strict=True))

    client.post(f"/api/train/cancel/{uids[0]}")  # not yet on any node: canceled at once
    after = [client.get(f"/api/models/{uid}").get_json()["data"] for uid in uids]
    assert [d["queuePosition"] for d in after] == [None, 1, 2]
    assert after[0]["jobs"][-1]["queuePosition"] is None
    assert create_model(client)["queuePosition"] is None, "a model that never ran waits for nothing"


def test_the_heartbeat_row_shows_the_nodes_limits(
    db: sessionmaker[Session], node_ctx: WorkerContext
) -> None:
    beat(node_ctx, started=True)
    with db() as session:
        row = session.get(Node, NODE)
        assert row is not None
        assert (row.max_jobs, row.memory_mb) == (2, 64_000)
