"""Errors after the claim (issue 10 item 4, issue 12 defect 1): a launch never leaves its job
claimed, with its GPU, by a launch that is over. Real PostgreSQL and the real process runtime;
no worker process runs, so each launch is driven by the test, one step at a time."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import GpuLease, Job, Model
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.services.queries import installation_id
from tests.integration.helpers import create_model
from tests.workers.conftest import model_of
from workers.completion import complete_job
from workers.context import WorkerContext, build_context
from workers.launcher import launch_job
from workers.requeue import republish_queued
from workers.runtime.base import ContainerState, LaunchSpec
from workers.runtime.process import ProcessRuntime
from workers.settings import NodeSettings

TRAINER = Path(__file__).resolve().parents[2] / "trainer" / "train.py"
FAST = {"total_epoch": 2, "val_interval": 1}


class EngineDropsOnce(ProcessRuntime):
    """A runtime whose first launch meets a connection error, as the Docker client raises it
    when the engine's socket stops answering mid-launch (the container is not created)."""

    dropped = False

    def launch(self, spec: LaunchSpec) -> ContainerState:
        if not self.dropped:
            self.dropped = True
            raise requests.exceptions.ConnectionError("('Connection aborted.', refused)")
        return super().launch(spec)


@pytest.fixture
def gpu_node(
    settings: Settings, tmp_path: Path, db: sessionmaker[Session]
) -> Iterator[WorkerContext]:
    node = replace(NodeSettings.from_env(), node="gpu-node", gpu_ids=(0,), state_dir=tmp_path / "p")
    with db() as session:
        installation = installation_id(session)
    runtime = EngineDropsOnce(
        tmp_path / "p",
        "gpu-node",
        installation=installation,
        entrypoint=[sys.executable, str(TRAINER)],
    )
    bounds = replace(settings.bounds, max_attempts=2, backoff_s=30, backoff_max_s=30)
    settings.output_root.mkdir(parents=True, exist_ok=True)
    ctx = build_context(settings.with_overrides(bounds=bounds), node, runtime)
    yield ctx
    with ctx.db() as session:
        for name in session.scalars(select(Job.container_name)):
            runtime.remove(name)
    ctx.engine.dispose()


def _queued_gpu_job(client: FlaskClient, db: sessionmaker[Session]) -> int:
    model = create_model(client, params=FAST, resources={"gpus": 1})
    client.post(f"/api/train/run/{model['uuid']}")  # no worker runs: the job stays QUEUED
    with db() as session:
        return session.scalars(select(Job.id)).one()


def _model_of_job(client: FlaskClient, db: sessionmaker[Session], job_id: int) -> dict:
    with db() as session:
        uid = session.scalar(select(Model.uuid).join(Job).where(Job.id == job_id))
    return model_of(client, str(uid))


def _leases(db: sessionmaker[Session]) -> list[int]:
    with db() as session:
        return list(session.scalars(select(GpuLease.job_id)))


def test_a_spec_that_cannot_be_built_releases_the_claim_and_gpu_at_once(
    client: FlaskClient, db: sessionmaker[Session], gpu_node: WorkerContext
) -> None:
    job_id = _queued_gpu_job(client, db)
    with transaction(db) as session:  # a row no spec can be built from (an older version's)
        session.execute(update(Job).values(resources={"gpus": 1, "memory_mb": -1}))

    answer = launch_job(gpu_node, job_id)

    assert answer.startswith("launch failed: memory_mb must be positive"), answer
    assert _leases(db) == [], "the GPU is free at once"
    with db() as session:
        job = session.get(Job, job_id)
        assert job.container_gone_dttm is not None and job.container_exit_code == 125
    complete_job(gpu_node.db, gpu_node.settings, None, job_id)
    with db() as session:
        assert session.get(Job, job_id).status_cd == "FAILED"


def test_a_connection_error_after_the_claim_gives_the_claim_back(
    client: FlaskClient, db: sessionmaker[Session], gpu_node: WorkerContext
) -> None:
    job_id = _queued_gpu_job(client, db)

    answer = launch_job(gpu_node, job_id)

    assert "claim released" in answer, answer
    with db() as session:
        job = session.get(Job, job_id)
        assert (job.status_cd, job.node, job.gpu_ids) == ("QUEUED", None, None)
        assert (job.launch_attempts, job.last_attempt_error[:15]) == (1, "ConnectionError")
    assert _leases(db) == []
    assert republish_queued(gpu_node) == 0, "not again before its backoff"

    with transaction(db) as session:  # the backoff has passed: the next claim launches it
        session.execute(update(Job).values(last_attempt_dttm=utcnow() - timedelta(minutes=1)))
    assert republish_queued(gpu_node) == 1
    assert launch_job(gpu_node, job_id).startswith("started")
    assert _leases(db) == [job_id]


def test_the_claim_after_the_last_attempt_ends_the_job(
    client: FlaskClient, db: sessionmaker[Session], gpu_node: WorkerContext
) -> None:
    job_id = _queued_gpu_job(client, db)
    with transaction(db) as session:  # two claims already ended without a container
        session.execute(
            update(Job).values(launch_attempts=2, last_attempt_error="ConnectionError: refused")
        )

    answer = launch_job(gpu_node, job_id)

    assert answer == f"job {job_id}: LAUNCH_FAILED: ConnectionError: refused", answer
    model = _model_of_job(client, db, job_id)
    assert (model["statusCd"], model["lastError"]) == (
        "ERROR",
        "LAUNCH_FAILED: ConnectionError: refused",
    )
    with db() as session:
        job = session.get(Job, job_id)
        assert (job.status_cd, job.node, job.launch_attempts) == ("FAILED", None, 2)
    assert _leases(db) == []
