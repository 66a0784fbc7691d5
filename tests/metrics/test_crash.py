"""A worker process killed between COPY and COMMIT leaves all the old rows and none of the new:
a real subprocess ingests, then dies by SIGKILL or os._exit before it commits."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import transaction
from app.services.status_writes import lock_model_by_id
from tests.conftest import TEST_DATABASE_URL
from tests.metrics.conftest import Ids, count_rows, ingest, new_job, stored, write

ROOT = Path(__file__).resolve().parents[2]


def wait_for_model_lock(db: sessionmaker[Session], model_id: int) -> None:
    """The server rolls a dead client's transaction back; its row lock goes with it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with transaction(db) as session:
                session.execute(text("SET LOCAL lock_timeout = '200ms'"))
                assert lock_model_by_id(session, model_id) is not None
                return
        except OperationalError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.parametrize(
    ("how", "returncode", "said"),
    [
        ("kill", -9, "copied 20000"),
        ("exit", 3, "copied 20000"),
        ("kill-mid-copy", -9, "dying mid-copy"),
    ],
)
def test_death_before_commit_leaves_the_old_rows(
    db: sessionmaker[Session],
    model_ids: Ids,
    tmp_path: Path,
    how: str,
    returncode: int,
    said: str,
) -> None:
    old = tmp_path / "old"
    write(old / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    write(old / "val.csv", "epoch,val_loss\n2,0.85\n")
    ingest(db, model_ids, old)
    before = stored(db, model_ids.model, "train"), stored(db, model_ids.model, "val")
    with transaction(db) as session:
        model = lock_model_by_id(session, model_ids.model)
        assert model is not None
        job = new_job(session, model).id
    new = tmp_path / "new"
    write(new / "train.csv", "epoch,loss\n" + "".join(f"{e},{1 / e}\n" for e in range(1, 20_001)))
    write(new / "val.csv", "epoch,val_loss\n2,0.5\n")

    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.metrics.crash_child",
            TEST_DATABASE_URL,
            str(model_ids.model),
            str(job),
            str(new),
            how,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == returncode, child.stderr
    assert said in child.stdout  # the COPY really ran in the dead transaction

    wait_for_model_lock(db, model_ids.model)
    assert (stored(db, model_ids.model, "train"), stored(db, model_ids.model, "val")) == before
    with db() as session:
        rows = session.scalar(
            text("SELECT count(*) FROM tb_model_metrics_train WHERE job_id = :j"), {"j": job}
        )
    assert rows == 0
    assert count_rows(db, "tb_model_metric_series") == 2
