"""`trainyard reingest JOB_ID`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.cli import main
from app.db.models import Job, Model
from app.db.session import transaction
from app.domain import layout
from tests.conftest import TEST_DATABASE_URL
from tests.metrics.conftest import Ids, stored, write


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("DATABASE_URL", TEST_DATABASE_URL)
    monkeypatch.setenv("OUTPUT_ROOT", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def finish(db: sessionmaker[Session], ids: Ids, status: str = "SUCCESS") -> Path:
    with transaction(db) as session:
        session.get_one(Job, ids.job).status_cd = status
        return Path(str(session.get_one(Model, ids.model).uuid))


def test_reingest_loads_the_files_again(
    db: sessionmaker[Session],
    model_ids: Ids,
    env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uuid = finish(db, model_ids)
    folder = layout.train_dir(env, uuid)
    write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    write(folder / "val.csv", "epoch,val_loss\n2,0.7\n")
    assert main(["reingest", str(model_ids.job)]) == 0
    assert "2 train, 1 val rows" in capsys.readouterr().out
    assert len(stored(db, model_ids.model, "train")) == 2

    write(folder / "val.csv", "epoch,val_loss\n2,x\n")
    assert main(["reingest", str(model_ids.job)]) == 1
    assert "val.csv line 2 column 2" in capsys.readouterr().out
    assert len(stored(db, model_ids.model, "train")) == 2  # unchanged


def test_reingest_refuses_running_and_unknown_jobs(
    db: sessionmaker[Session], model_ids: Ids, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reingest", str(model_ids.job)]) == 1
    assert "is RUNNING" in capsys.readouterr().out
    assert main(["reingest", "999"]) == 1
    assert "no job 999" in capsys.readouterr().out
