"""Property-based run of /api/openapi.json against the live API on PostgreSQL (schemathesis).

Every operation of the document gets valid and invalid requests; every answer must be
documented (status and content type) and conform to its schema (response types are closed:
a key the schema lacks fails), and none may be a 5xx. Most requests name a seeded model that
has jobs, curves, test results and a dataset, so the rich answers are checked, not only 404s.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.api.docs import OPERATIONS, Operation
from app.config import Settings
from app.datasets import generate_demo_dataset
from app.db.models import Model
from app.db.session import transaction
from app.domain import layout
from tests.integration.helpers import create_model
from tests.metrics.conftest import Ids, ingest, new_job, write

MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A follow stream of a running job lasts LOG_FOLLOW_MAX_S: short here, and as many at
    once as the examples open."""
    return settings.with_overrides(log_follow_max_s=0.3, log_follow_streams=1000)


def _seed(
    client: FlaskClient, db: sessionmaker[Session], settings: Settings, tmp: Path
) -> list[str]:
    """Models in the states each command accepts: new (run), running (cancel), stopped with a
    checkpoint (resume, restart), and trained and tested (test run, curves, results, logs)."""
    generate_demo_dataset(settings.dataset_root / "demo", n_samples=60)
    new = create_model(client, dataset="demo")
    running = create_model(client, dataset="demo")
    stopped = create_model(client, dataset="demo")
    with transaction(db) as session:
        new_job(session, session.get_one(Model, running["id"]), "TRAIN", "QUEUED")
        new_job(session, session.get_one(Model, stopped["id"]), "TRAIN", "STOPPED")
    _set(db, running["id"], status_cd="IN_PROGRESS", step1_state="IN_PROGRESS", epochs_done=1)
    _set(db, stopped["id"], status_cd="STOPPED", step1_state="STOPPED", checkpoint_epoch=2)
    return [new["uuid"], running["uuid"], stopped["uuid"], _trained(client, db, settings, tmp)]


def _set(db: sessionmaker[Session], model_id: int, **values: Any) -> None:
    with db.begin() as session:
        session.execute(update(Model).where(Model.id == model_id).values(**values))


def _trained(client: FlaskClient, db: sessionmaker[Session], settings: Settings, tmp: Path) -> str:
    model = create_model(client, dataset="demo", params={"total_epoch": 4, "val_interval": 2})
    with transaction(db) as session:
        row = session.get_one(Model, model["id"])
        train = new_job(session, row, "TRAIN", "SUCCESS")
        evaluation = new_job(session, row, "EVAL", "SUCCESS")
        evaluation.params = {**evaluation.params, "epoch": 4}
        train_id, eval_id = train.id, evaluation.id
    write(tmp / "train" / "train.csv", "epoch,loss\n1,0.9\n2,nan\n3,0.5\n4,0.4\n")
    write(tmp / "train" / "val.csv", "epoch,val_loss\n2,0.7\n4,0.6\n")
    ingest(db, Ids(model["id"], train_id), tmp / "train")
    eval_dir = layout.eval_dir(settings.output_root, model["uuid"], eval_id)
    write(eval_dir / "test" / "test.csv", "epoch,test_loss\n4,0.25\n")
    write(eval_dir / "test" / "summary.json", json.dumps({"epoch": 4, "test_loss": 0.25}))
    ingest(db, Ids(model["id"], eval_id), eval_dir, kind="eval")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("test.csv", "epoch,test_loss\n4,0.25\n")
    write(layout.results_zip(eval_dir, 4), buffer.getvalue())
    _set(
        db,
        model["id"],
        status_cd="COMPLETED",
        step1_state="COMPLETED",
        step2_state="COMPLETED",
        best_epoch=4,
        epochs_done=4,
        checkpoint_epoch=4,
    )
    return str(model["uuid"])


def _cases() -> list[Any]:
    """Valid requests for every operation; invalid ones where it takes any input."""
    cases = []
    for op in OPERATIONS:
        label = f"{op.method.upper()} {op.path}"
        cases.append(pytest.param(op, GenerationMode.POSITIVE, id=f"{label} valid"))
        if "{" in op.path or op.query or op.body:
            cases.append(pytest.param(op, GenerationMode.NEGATIVE, id=f"{label} invalid"))
    return cases


@pytest.mark.parametrize(("operation", "mode"), _cases())
def test_every_answer_is_documented_and_never_a_server_error(
    app: Flask,
    client: FlaskClient,
    db: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
    operation: Operation,
    mode: GenerationMode,
) -> None:
    seeded = _seed(client, db, settings, tmp_path)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    strategy = schema[operation.path][operation.method.upper()].as_strategy(mode)

    # The same requests on every run (derandomize): a failure reproduces.
    @settings_(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        parameters = case.path_parameters or {}
        given_uuid = parameters.get("uuid")
        # Four requests in five name a seeded model (a valid uuid keeps its own otherwise),
        # and then an epoch it has, so that commands are accepted too.
        pick = int(given_uuid[-1], 16) % 5 if _is_uuid(given_uuid) else 4
        if pick < 4:
            parameters["uuid"] = seeded[pick]
            if isinstance(parameters.get("epoch"), int) and parameters["epoch"] > 0:
                parameters["epoch"] = 1 + (parameters["epoch"] - 1) % 4
        # Every write carries Content-Type: application/json, also a command without a body
        # (app/api/auth.py); what a body-less request sends is otherwise up to the generator.
        headers = {"Content-Type": "application/json"} if case.method == "POST" else None
        case.call_and_validate(headers=headers, checks=CHECKS)

    check()


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True
