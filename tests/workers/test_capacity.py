"""A node holds at most NODE_MAX_JOBS containers and promises at most NODE_MEMORY_MB; the rest
wait QUEUED, launch oldest first, show their place in the queue and never fail (issue 12 #5).

Real worker processes on the process runtime (each "container" a trainer process), real
PostgreSQL and Redis. While the runs go on, the test samples the database (jobs a node holds)
and the runtime itself (trainer processes alive), and the API (queue positions).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Installation, Job
from tests.integration.helpers import create_model
from workers.runtime.process import ProcessRuntime

NODE = "cap-node"
PARAMS = {"total_epoch": 3, "val_interval": 1, "epoch_seconds": 0.7}


@dataclass
class Samples:
    held: list[int] = field(default_factory=list)  # jobs the node holds, per the database
    alive: list[int] = field(default_factory=list)  # trainer processes running, per the runtime
    positions: list[dict[int, int | None]] = field(default_factory=list)  # job id → position


def _run_all(client: FlaskClient, count: int, **model: Any) -> list[tuple[str, int]]:
    uids = [create_model(client, params=PARAMS, **model)["uuid"] for _ in range(count)]
    runs = []
    for uid in uids:  # one after the other: the queue order is this order
        reply = client.post(f"/api/train/run/{uid}").get_json()
        runs.append((uid, reply["data"]["job"]["id"]))
    return runs


def _sample_until_done(
    client: FlaskClient,
    db: sessionmaker[Session],
    runtime: ProcessRuntime,
    runs: list[tuple[str, int]],
    timeout_s: float,
) -> Samples:
    samples = Samples()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db() as session:
            samples.held.append(
                session.scalar(
                    select(func.count(Job.id)).where(
                        Job.node == NODE, Job.container_gone_dttm.is_(None)
                    )
                )
                or 0
            )
        samples.alive.append(sum(1 for s in runtime.list_managed(NODE) if s.running))
        listed = client.get("/api/models/list?size=50").get_json()["data"]["content"]
        by_uid = {item["uuid"]: item for item in listed}
        samples.positions.append({job: by_uid[uid].get("queuePosition") for uid, job in runs})
        if all(by_uid[uid]["statusCd"] in ("COMPLETED", "ERROR") for uid, _ in runs):
            return samples
        time.sleep(0.15)
    raise AssertionError(f"the runs did not end within {timeout_s:g} s")


def _runtime(db: sessionmaker[Session], state_dir: Path) -> ProcessRuntime:
    with db() as session:
        installation = session.scalar(select(Installation.id))
    assert installation is not None
    return ProcessRuntime(state_dir, NODE, installation=installation)


def _jobs(db: sessionmaker[Session], job_ids: list[int]) -> list[Job]:
    with db() as session:
        return [session.get(Job, job_id) for job_id in job_ids]


def _assert_waiting_positions(samples: Samples, job_ids: list[int], waiting: int) -> None:
    """While `len(job_ids) - waiting` run, the others show 1..waiting in queue order; each
    job's place only ever goes down, and ends null."""
    expected = dict(zip(job_ids[-waiting:], range(1, waiting + 1), strict=True))
    assert any(
        {job: pos for job, pos in sample.items() if pos is not None} == expected
        for sample in samples.positions
    ), f"never saw the waiting jobs at {expected}: {samples.positions[:20]}"
    for job in job_ids:
        seen = [sample[job] for sample in samples.positions if sample[job] is not None]
        assert seen == sorted(seen, reverse=True), f"job {job}'s place went up: {seen}"
        assert samples.positions[-1][job] is None


def test_a_node_runs_at_most_node_max_jobs_and_the_rest_wait_in_order(
    client: FlaskClient, workers, db: sessionmaker[Session], tmp_path: Path
) -> None:
    state_dir = tmp_path / "processes"
    workers(
        NODE,
        WORKER_RUNTIME="process",
        PROCESS_STATE_DIR=str(state_dir),
        NODE_MAX_JOBS="2",
        WORKER_CONCURRENCY="4",
    )
    runs = _run_all(client, 5)
    job_ids = [job for _, job in runs]
    samples = _sample_until_done(client, db, _runtime(db, state_dir), runs, 120)

    assert max(samples.held) == 2, f"the node held {max(samples.held)} jobs at once"
    assert max(samples.alive) <= 2, f"{max(samples.alive)} trainer processes ran at once"
    jobs = _jobs(db, job_ids)
    assert [j.status_cd for j in jobs] == ["SUCCESS"] * 5, "waiting never fails a job"
    assert [j.launch_attempts for j in jobs] == [1] * 5, "waiting is not a launch attempt"
    claimed = sorted(jobs, key=lambda j: j.claimed_dttm)
    assert [j.id for j in claimed] == job_ids, "launched oldest first"
    _assert_waiting_positions(samples, job_ids, waiting=3)


def test_a_node_never_promises_more_than_node_memory_mb(
    client: FlaskClient, workers, db: sessionmaker[Session], tmp_path: Path
) -> None:
    state_dir = tmp_path / "processes"
    workers(
        NODE,
        WORKER_RUNTIME="process",
        PROCESS_STATE_DIR=str(state_dir),
        NODE_MAX_JOBS="4",
        NODE_MEMORY_MB="3000",
    )
    runs = _run_all(client, 3, resources={"memory_mb": 2048})
    job_ids = [job for _, job in runs]
    samples = _sample_until_done(client, db, _runtime(db, state_dir), runs, 120)

    assert max(samples.held) == 1, "two jobs of 2048 MiB do not fit in 3000"
    assert max(samples.alive) <= 1
    jobs = _jobs(db, job_ids)
    assert [j.status_cd for j in jobs] == ["SUCCESS"] * 3
    assert [j.launch_attempts for j in jobs] == [1] * 3
    assert [j.id for j in sorted(jobs, key=lambda j: j.claimed_dttm)] == job_ids
    _assert_waiting_positions(samples, job_ids, waiting=2)
