"""Reconcile runs beside launches in other threads. These tests put the node's view into the
states that race produces, with the real process runtime and real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db.models import Job
from app.services.queries import installation_id
from tests.integration.helpers import create_model
from workers.context import build_context
from workers.launcher import launch_job
from workers.reconcile import reconcile_node
from workers.runtime.process import ProcessRuntime
from workers.settings import NodeSettings

TRAINER = Path(__file__).resolve().parents[2] / "trainer" / "train.py"


class ListedTooEarly(ProcessRuntime):
    """A runtime whose container listing was taken just before a launch created its
    container — what a reconcile pass sees when a launch thread is a moment ahead of it."""

    def list_managed(self, node: str | None = None) -> list:
        return []


def test_a_container_created_after_the_listing_is_not_taken_for_missing(
    client: FlaskClient, settings: Settings, db: sessionmaker[Session], tmp_path: Path
) -> None:
    import sys

    node = NodeSettings.from_env()
    node = NodeSettings(**{**node.__dict__, "node": "race-node", "state_dir": tmp_path / "p"})
    with db() as session:
        installation = installation_id(session)
    runtime = ListedTooEarly(
        tmp_path / "p",
        "race-node",
        installation=installation,
        entrypoint=[sys.executable, str(TRAINER)],
    )
    ctx = build_context(settings=settings, node=node, runtime=runtime)
    try:
        model = create_model(client, params={"total_epoch": 50, "epoch_seconds": 2})
        job_id = client.post(f"/api/train/run/{model['uuid']}").get_json()["data"]["job"]["id"]
        assert launch_job(ctx, job_id).startswith("started")

        counts = reconcile_node(ctx)

        assert counts == {"running": 1}
        with db() as session:
            job = session.get(Job, job_id)
            assert (job.status_cd, job.container_ended_dttm) == ("RUNNING", None)
        state = runtime.inspect(job.container_name)
        assert state is not None and state.running, "the running container was left alone"
    finally:
        with db() as session:
            names = list(session.scalars(select(Job.container_name)))
        for name in names:
            runtime.remove(name)
        ctx.engine.dispose()
