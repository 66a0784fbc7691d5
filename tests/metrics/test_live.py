"""Live metrics while a TRAIN job runs: incremental, torn-line safe, cheap when idle, and the
completion ingest still leaves exactly the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, Model
from app.db.session import transaction
from app.metrics import ingest_live, metric_summary, store
from app.metrics.summary import summarize
from app.services.status_writes import lock_model_by_id
from tests.metrics.conftest import Ids, ingest, new_job, stored, write


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def replace(path: Path, text: str) -> None:
    """What the trainer does on resume: write a temporary file and rename it into place."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def losses(db: sessionmaker[Session], model_id: int, split: str = "train") -> list[tuple]:
    return [
        (e, m.get("loss", m.get("val_loss")), job) for e, _, job, m in stored(db, model_id, split)
    ]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "train"


def test_rows_arrive_as_they_are_written(
    db: sessionmaker[Session], model_ids: Ids, folder: Path
) -> None:
    live = lambda: ingest_live(db, model_ids.model, model_ids.job, folder)  # noqa: E731
    assert live() == 0  # no files yet
    train = write(folder / "train.csv", "epoch,loss")
    assert live() == 0  # the header is not complete yet
    append(train, ",acc\n")
    assert live() == 0
    append(train, "1,0.9,0.1\n2,0.8,0.2\n")
    assert live() == 2
    append(train, "3,0.7,0.3\n4,0.")  # a torn last line waits
    assert live() == 1
    assert [e for e, *_ in losses(db, model_ids.model)] == [1, 2, 3]
    append(train, "65,0.4\n")
    write(folder / "val.csv", "epoch,val_loss\n2,0.75\n4,0.6\n")
    assert live() == 3
    assert losses(db, model_ids.model) == [
        (1, 0.9, model_ids.job),
        (2, 0.8, model_ids.job),
        (3, 0.7, model_ids.job),
        (4, 0.65, model_ids.job),
    ]
    assert [e for e, *_ in losses(db, model_ids.model, "val")] == [2, 4]
    with db() as session:
        # The summary kept up by merging equals one computed from all the rows.
        cached = metric_summary(session, session.get_one(Model, model_ids.model))["train"]
        series = store.find_series(session, model_ids.model, "train")
        assert series is not None
        rows = store.read_rows(session, "train", model_ids.model, 2)
        assert cached == summarize(series.metric_names, rows)
        assert cached["loss"]["min"] == 0.65 and cached["loss"]["minEpoch"] == 4


def test_nothing_changed_costs_no_query(
    db: sessionmaker[Session], model_ids: Ids, folder: Path
) -> None:
    write(folder / "train.csv", "epoch,loss\n1,0.9\n")
    write(folder / "val.csv", "epoch,val_loss\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 1
    engine: Engine = db.kw["bind"]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert ingest_live(db, model_ids.model, model_ids.job, folder) == 0
        assert ingest_live(db, model_ids.model, model_ids.job, folder) == 0
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


def test_a_resume_rewrites_the_file_and_the_curve_follows(
    db: sessionmaker[Session], model_ids: Ids, folder: Path
) -> None:
    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n3,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 3
    with transaction(db) as session:  # stopped at 3, checkpoint 2; resumed as a new job
        model = lock_model_by_id(session, model_ids.model)
        assert model is not None
        session.get_one(Job, model_ids.job).status_cd = "STOPPED"
        resumed = new_job(session, model).id
    replace(train, "epoch,loss\n1,0.9\n2,0.8\n")
    assert ingest_live(db, model_ids.model, resumed, folder) == 2
    assert [e for e, *_ in losses(db, model_ids.model)] == [1, 2]  # epoch 3 of the old run gone
    append(train, "3,0.65\n")
    assert ingest_live(db, model_ids.model, resumed, folder) == 1
    assert losses(db, model_ids.model) == [(1, 0.9, resumed), (2, 0.8, resumed), (3, 0.65, resumed)]
    # The old job's process may still call: it is not the running attempt, nothing happens.
    append(train, "4,0.6\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 0


def test_the_final_ingest_leaves_exactly_the_file(
    db: sessionmaker[Session], model_ids: Ids, folder: Path
) -> None:
    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    write(folder / "val.csv", "epoch,val_loss\n2,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 3
    append(train, "3,0.7\n4,0.6\n")
    append(folder / "val.csv", "4,0.5\n")
    ingest(db, model_ids, folder)  # completion: exactly the files, whatever live did
    with transaction(db) as session:
        session.get_one(Job, model_ids.job).status_cd = "SUCCESS"
    expected = [(e, loss, model_ids.job) for e, loss in [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]]
    assert losses(db, model_ids.model) == expected
    append(train, "5,0.5\n")  # a late call after the job ended changes nothing
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 0
    assert losses(db, model_ids.model) == expected
    with db() as session:
        model = session.get_one(Model, model_ids.model)
        assert metric_summary(session, model)["val"]["val_loss"]["minEpoch"] == 4
        assert model.best_epoch == 4


def test_a_bad_row_stops_the_live_curve_but_never_raises(
    db: sessionmaker[Session], model_ids: Ids, folder: Path
) -> None:
    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n2,oops\n3,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 1
    append(train, "4,0.6\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 0
    assert [e for e, *_ in losses(db, model_ids.model)] == [1]
    write(folder / "val.csv", "\xff garbage\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 0


def test_only_the_running_attempt_writes(
    db: sessionmaker[Session], model_ids: Ids, folder: Path
) -> None:
    write(folder / "train.csv", "epoch,loss\n1,0.9\n")
    with transaction(db) as session:
        session.get_one(Job, model_ids.job).status_cd = "CANCELED"
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 0
    assert stored(db, model_ids.model, "train") == []


def test_a_cursor_out_of_step_with_the_table_syncs_again(
    db: sessionmaker[Session], model_ids: Ids, folder: Path, tmp_path: Path
) -> None:
    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    write(folder / "val.csv", "epoch,val_loss\n2,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 3
    # Someone else rewrote the rows (another process, an operator's reingest …).
    other = tmp_path / "other"
    write(other / "train.csv", "epoch,loss\n1,0.5\n")
    write(other / "val.csv", "epoch,val_loss\n2,0.7\n")
    ingest(db, model_ids, other)
    append(train, "3,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 3
    assert [(e, loss) for e, loss, _ in losses(db, model_ids.model)] == [
        (1, 0.9),
        (2, 0.8),
        (3, 0.7),
    ]


@pytest.fixture
def deletes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The splits whose rows an ingest deleted (a completion that keeps the live rows does not)."""
    seen: list[str] = []
    real = store.delete_rows

    def spy(session: Session, split: str, model_id: int, job_id: int) -> None:
        seen.append(split)
        real(session, split, model_id, job_id)

    monkeypatch.setattr(store, "delete_rows", spy)
    return seen


def test_the_completion_keeps_the_live_rows_and_loads_the_rest(
    db: sessionmaker[Session], model_ids: Ids, folder: Path, deletes: list[str]
) -> None:
    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    write(folder / "val.csv", "epoch,val_loss\n2,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 3
    deletes.clear()
    append(train, "3,0.7\n4,0.6\n")
    ingest(db, model_ids, folder)
    assert deletes == []  # train: 2 rows kept, 2 loaded; val: all kept
    assert [(e, loss) for e, loss, _ in losses(db, model_ids.model)] == [
        (1, 0.9),
        (2, 0.8),
        (3, 0.7),
        (4, 0.6),
    ]
    ingest(db, model_ids, folder)  # again, unchanged: nothing to load at all
    assert deletes == [] and len(losses(db, model_ids.model)) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("3,0.7\n2,0.6\n", "train.csv line 5 column 1: epoch 2 appears twice (first on line 3)"),
        ("3,0.7\n4,nope\n", "train.csv line 5 column 2: 'nope' in loss is not a number"),
        ('3,"0.7\n', "train.csv line 4: bad CSV (unexpected end of data)"),
    ],
)
def test_errors_after_the_kept_rows_are_named_and_change_nothing(
    db: sessionmaker[Session], model_ids: Ids, folder: Path, change: str, message: str
) -> None:
    from app.metrics import MetricsError

    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    write(folder / "val.csv", "epoch,val_loss\n2,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 3
    append(train, change)
    with pytest.raises(MetricsError) as caught:
        ingest(db, model_ids, folder)
    assert str(caught.value) == f"metrics-parse-error: {message}"
    assert [e for e, *_ in losses(db, model_ids.model)] == [1, 2]


def test_a_changed_beginning_or_deleted_rows_load_everything(
    db: sessionmaker[Session], model_ids: Ids, folder: Path, deletes: list[str]
) -> None:
    train = write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    write(folder / "val.csv", "epoch,val_loss\n2,0.7\n")
    assert ingest_live(db, model_ids.model, model_ids.job, folder) == 3
    train.write_text("epoch,loss\n1,0.5\n2,0.8\n3,0.7\n")  # rewritten in place, same job
    deletes.clear()
    ingest(db, model_ids, folder)
    assert deletes == ["train"]
    assert [(e, loss) for e, loss, _ in losses(db, model_ids.model)] == [
        (1, 0.5),
        (2, 0.8),
        (3, 0.7),
    ]
    with transaction(db) as session:  # a restart deletes the rows, not the series row
        model = lock_model_by_id(session, model_ids.model)
        assert model is not None
        from app.services.status_writes import _reset_training

        _reset_training(session, model)
    deletes.clear()
    ingest(db, model_ids, folder)
    assert deletes == ["train", "val"]
    assert len(losses(db, model_ids.model)) == 3
