"""The embedded default (SQLite): the same files give the same rows, errors and summaries."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import upgrade
from app.db.models import Model
from app.db.session import make_engine, make_session_factory
from app.metrics import MetricsError, ingest_live, metric_summary
from app.metrics.series import chart
from tests.metrics.conftest import count_rows, ingest, new_model, stored, write


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'trainyard.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def test_round_trip_errors_and_summary_on_sqlite(
    lite: sessionmaker[Session], tmp_path: Path
) -> None:
    ids = new_model(lite)
    names = ["loss", *(f"acc_{i}" for i in range(34))]  # past the 32 slots
    rows = [
        f"{e},{'nan' if e == 2 else 1 / e}," + ",".join(str(e + i) for i in range(34))
        for e in (1, 2, 3)
    ]
    folder = tmp_path / "train"
    write(folder / "train.csv", "epoch," + ",".join(names) + "\n" + "\n".join(rows) + "\n")
    write(folder / "val.csv", "epoch,val_loss\n2,inf\n4,0.5\n")
    ingest(lite, ids, folder)
    train = stored(lite, ids.model, "train")
    assert [e for e, *_ in train] == [1, 2, 3]
    assert math.isnan(train[1][3]["loss"]) and train[2][3]["acc_33"] == 36.0
    assert stored(lite, ids.model, "val")[0][3]["val_loss"] == math.inf
    with lite() as session:
        model = session.get_one(Model, ids.model)
        assert model.best_epoch == 4
        summary = metric_summary(session, model)
        assert summary["train"]["loss"]["min"] == 1 / 3
        assert summary["train"]["loss"]["last"] == 1 / 3
        assert chart(session, model, "train", 500)["points"][1]["loss"] == "NaN"

    write(folder / "val.csv", "epoch,val_loss\n2,0.5\n2,0.4\n")
    with pytest.raises(MetricsError, match=r"val\.csv line 3 column 1: epoch 2 appears twice"):
        ingest(lite, ids, folder)
    assert count_rows(lite, "tb_model_metrics_validation") == 2  # the earlier rows, untouched


def test_live_on_sqlite(lite: sessionmaker[Session], tmp_path: Path) -> None:
    ids = new_model(lite)
    folder = tmp_path / "train"
    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n")
    assert ingest_live(lite, ids.model, ids.job, folder) == 1
    with train.open("a") as handle:
        handle.write("2,nan\n3,0.7\n")
    assert ingest_live(lite, ids.model, ids.job, folder) == 2
    assert [e for e, *_ in stored(lite, ids.model, "train")] == [1, 2, 3]
