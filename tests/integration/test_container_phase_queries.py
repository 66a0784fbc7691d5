"""The named SQL conditions on a job's container phase (app/services/queries.py) select exactly
the rows whose Python phase (`Job.container_phase`) they name, on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job
from app.db.session import transaction
from app.domain.container_phases import ContainerPhase
from app.services.queries import held_by, holds_container, in_phase
from tests.integration.helpers import create_model

#: (node, end recorded, gone) of one job in each phase, as the moves leave them.
ROWS = {
    ContainerPhase.UNCLAIMED: (None, False, False),
    ContainerPhase.CLAIMED: ("node-a", False, False),
    ContainerPhase.ENDED: ("node-a", True, False),
    ContainerPhase.GONE: ("node-a", True, True),
}


def test_sql_and_python_name_the_same_phase(client: FlaskClient, db: sessionmaker[Session]) -> None:
    model = create_model(client)
    now = datetime.now(UTC)
    ids: dict[ContainerPhase, int] = {}
    with transaction(db) as session:
        for attempt, (phase, (node, ended, gone)) in enumerate(ROWS.items(), start=1):
            job = Job(
                model_id=model["id"],
                job_type="TRAIN",
                attempt=attempt,
                status_cd="CANCELED",
                image="trainyard/trainer:latest",
                node=node,
                container_ended_dttm=now if ended else None,
                container_gone_dttm=now if gone else None,
            )
            session.add(job)
            session.flush()
            ids[phase] = job.id
    mine = Job.model_id == model["id"]

    with db() as session:
        for phase, job_id in ids.items():
            job = session.get(Job, job_id)
            assert job is not None and job.container_phase is phase
            selected = session.scalars(select(Job.id).where(mine, in_phase(phase))).all()
            assert selected == [job_id], phase
        holding = set(session.scalars(select(Job.id).where(mine, holds_container())))
        assert holding == {ids[p] for p in ROWS if p.holds_container}
        on_a = set(session.scalars(select(Job.id).where(mine, held_by("node-a"))))
        assert on_a == holding
        assert session.scalars(select(Job.id).where(mine, held_by("node-b"))).all() == []
