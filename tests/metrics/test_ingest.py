"""Completion ingest on the real PostgreSQL: round trip, replace-never-duplicate, malformed
files, best epoch, test rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Model
from app.db.session import transaction
from app.metrics import MetricsError, fastcopy
from app.metrics import ingest as ingest_module
from app.metrics.summary import metric_summary
from app.services.status_writes import _reset_training, lock_model_by_id
from tests.metrics.conftest import Ids, count_rows, ingest, new_job, new_model, stored, write

VAL = "epoch,val_loss,val_accuracy\n2,0.9,0.5\n4,0.7,0.6\n"


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN (and -0.0 is told from 0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def train_dir(tmp_path: Path, train: str | bytes, val: str | bytes = VAL) -> Path:
    folder = tmp_path / "train"
    write(folder / "train.csv", train)
    write(folder / "val.csv", val)
    return folder


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which path each file took: 'fast' (all streamed into COPY), 'careful' (all parsed
    here) or 'mixed' (COPY up to a block the screen refused, parsed from there)."""
    taken: list[str] = []
    real = ingest_module._copy_fast

    def spy(*args: object) -> object:
        result = real(*args)  # type: ignore[arg-type]
        if isinstance(result, fastcopy.FastCopy) and result.rest_offset is None:
            taken.append("fast")
        elif isinstance(result, fastcopy.FastCopy) and result.rows:
            taken.append("mixed")
        else:
            taken.append("careful")
        return result

    monkeypatch.setattr(ingest_module, "_copy_fast", spy)
    return taken


def all_careful(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ingest_module, "_copy_fast", lambda *a: fastcopy.FastCopy(0, a[2].data_offset, 2)
    )


ODD_VALUES = (
    "epoch,loss,acc,lr,grad\n"
    "1,0.123456789012345678,nan,1e-310,-0.0\n"
    "2,inf,-Infinity,1.7976931348623157e308,\n"
    "3,-1.5E+3,NaN,5e-324,0\n"
    "4, 2.5 ,+inf, 1e3 ,+0\n"  # spaces around numbers: both paths read them
)
EXPECTED = [
    (1, -1, {"loss": 0.123456789012345678, "acc": math.nan, "lr": 1e-310, "grad": -0.0}),
    (2, -1, {"loss": math.inf, "acc": -math.inf, "lr": 1.7976931348623157e308, "grad": None}),
    (3, -1, {"loss": -1500.0, "acc": math.nan, "lr": 5e-324, "grad": 0.0}),
    (4, -1, {"loss": 2.5, "acc": math.inf, "lr": 1000.0, "grad": 0.0}),
]


@pytest.mark.parametrize(
    ("content", "path"),
    [
        (ODD_VALUES, "fast"),
        (ODD_VALUES.replace("\n", "\r\n") + "\r\n\r\n", "fast"),  # CRLF, trailing blank lines
        ("\ufeff" + ODD_VALUES.replace("1,0.1234", '1,"0.1234'), "careful"),  # BOM, quotes
        (ODD_VALUES.replace("2,inf", "\n2,inf"), "careful"),  # a blank line inside
        # A cell of spaces: COPY refuses it, the careful path stores the missing value.
        (ODD_VALUES.replace("308,\n", "308,  \n"), "careful"),
    ],
)
def test_round_trip_of_every_column_and_value(
    db: sessionmaker[Session],
    model_ids: Ids,
    tmp_path: Path,
    paths: list[str],
    content: str,
    path: str,
) -> None:
    if '"0.1234' in content:
        content = content.replace("345678,", '345678",', 1)
    ingest(db, model_ids, train_dir(tmp_path, content))
    rows = stored(db, model_ids.model, "train")
    assert same([(e, s, m) for e, s, _, m in rows], EXPECTED)
    assert {job for _, _, job, _ in rows} == {model_ids.job}
    assert paths[0] == path
    val = stored(db, model_ids.model, "val")
    assert [(e, m) for e, _, _, m in val] == [
        (2, {"val_loss": 0.9, "val_accuracy": 0.5}),
        (4, {"val_loss": 0.7, "val_accuracy": 0.6}),
    ]
    with db() as session:
        model = session.get(Model, model_ids.model)
        assert model is not None
        assert model.step1_metric_save_yn is True
        assert model.best_epoch == 4


def test_step_column_and_more_metrics_than_slots(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path, paths: list[str]
) -> None:
    names = [f"acc_{i}" for i in range(40)]
    lines = ["step,epoch," + ",".join(names)]
    lines += [
        f"{s},{1 + s // 3}," + ",".join(f"{s + i / 100}" for i in range(40)) for s in range(9)
    ]
    ingest(db, model_ids, train_dir(tmp_path, "\n".join(lines) + "\n"))
    rows = stored(db, model_ids.model, "train")
    assert [(e, s) for e, s, _, _ in rows] == [(1 + s // 3, s) for s in range(9)]
    assert rows[8][3] == {name: 8 + i / 100 for i, name in enumerate(names)}
    assert paths[0] == "careful"  # past the 32 slots the overflow array needs the careful path


@pytest.mark.parametrize("block", [fastcopy.BLOCK, 64])
def test_fast_mixed_and_careful_paths_store_the_same_rows(
    db: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    paths: list[str],
    block: int,
) -> None:
    # Small blocks: COPY takes the rows before the quoted cell, the careful path the rest.
    monkeypatch.setattr(fastcopy, "BLOCK", block)
    content = "epoch,step,loss,acc\n" + "".join(
        f"{e},{e * 10},{1 / e!r},{'' if e % 7 == 0 else e % 3}\n" for e in range(1, 500)
    )
    content = content.replace("\n400,4000,0.0025,", '\n400,4000,"0.0025",', 1)
    assert '"0.0025"' in content
    folder = train_dir(tmp_path, content)
    fast = new_model(db)
    ingest(db, fast, folder)
    all_careful(monkeypatch)
    careful = new_model(db)
    ingest(db, careful, folder)
    assert paths[0] == ("mixed" if block == 64 else "careful")
    strip = lambda rows: [(e, s, m) for e, s, _, m in rows]  # noqa: E731
    assert strip(stored(db, fast.model, "train")) == strip(stored(db, careful.model, "train"))
    assert len(stored(db, fast.model, "train")) == 499


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "epoch,loss\n1,0.5\n2,0.4\n3,0.3\n2,0.2\n",
            "line 5 column 1: epoch 2 appears twice (first on line 3)",
        ),
        ("epoch,loss\n1,0.5\n2,0.4\n3,0.3\n4,x\n", "line 5 column 2: 'x' in loss is not a number"),
        (
            "epoch,loss\n1,0.5\n2,0.4\n3,0.3,9\n4,x\n",
            "line 4 column 3: 3 fields where the header has 2",
        ),
        (
            'epoch,loss\n1,0.5\n2,0.4\n3,"0.3"\n1,0.2\n',
            "line 5 column 1: epoch 1 appears twice (first on line 2)",
        ),
    ],
)
def test_errors_across_the_fast_and_careful_parts(
    db: sessionmaker[Session],
    model_ids: Ids,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: str,
    message: str,
) -> None:
    monkeypatch.setattr(fastcopy, "BLOCK", 12)  # a block or two of lines each
    with pytest.raises(MetricsError) as caught:
        ingest(db, model_ids, train_dir(tmp_path, content))
    assert str(caught.value) == f"metrics-parse-error: train.csv {message}"
    assert count_rows(db, "tb_model_metrics_train") == 0


def test_ingesting_twice_gives_the_same_rows(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    folder = train_dir(tmp_path, ODD_VALUES)
    ingest(db, model_ids, folder)
    first = stored(db, model_ids.model, "train"), stored(db, model_ids.model, "val")
    ingest(db, model_ids, folder)
    assert same(first, (stored(db, model_ids.model, "train"), stored(db, model_ids.model, "val")))
    assert count_rows(db, "tb_model_metrics_train") == 4
    assert count_rows(db, "tb_model_metric_series") == 2


def test_resume_continues_the_curve_and_no_epoch_appears_twice(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    first = "epoch,loss\n1,0.9\n2,0.8\n3,0.7\n"
    ingest(db, model_ids, train_dir(tmp_path, first, "epoch,val_loss\n2,0.85\n"))
    with transaction(db) as session:
        model = lock_model_by_id(session, model_ids.model)
        assert model is not None
        resumed = Ids(model.id, new_job(session, model).id)
    # The trainer kept rows <= 2 (its checkpoint) and went on: epoch 3 has new values.
    ingest(
        db,
        resumed,
        train_dir(
            tmp_path,
            "epoch,loss\n1,0.9\n2,0.8\n3,0.65\n4,0.6\n",
            "epoch,val_loss\n2,0.85\n4,0.55\n",
        ),
    )
    rows = stored(db, model_ids.model, "train")
    assert [(e, m["loss"]) for e, _, _, m in rows] == [(1, 0.9), (2, 0.8), (3, 0.65), (4, 0.6)]
    assert {job for _, _, job, _ in rows} == {resumed.job}


MALFORMED = [
    ("epoch,loss\n1,0.5\n2,0.4x\n", "train.csv line 3 column 2: '0.4x' in loss is not a number"),
    (
        "epoch,loss,acc\n1,0.5,1\n2,0.4\n",
        "train.csv line 3 column 3: 2 fields where the header has 3",
    ),
    ("loss,acc\n0.5,1\n", "train.csv line 1: no 'epoch' column (columns: loss, acc)"),
    ("", "train.csv line 1: the file is empty (no header)"),
    ("epoch,loss\n", "train.csv line 2: no data rows (only a header)"),
    ("epoch,loss\n\n\n", "train.csv line 2: no data rows (only a header)"),
    (
        "epoch,loss\n1,0.5\n2,0.4\n2,0.3\n",
        "train.csv line 4 column 1: epoch 2 appears twice (first on line 3)",
    ),
    ("epoch,loss\n1,0.5\n2,1e999999\n", None),  # not an error: Python reads it as inf
]


@pytest.mark.parametrize(("content", "message"), MALFORMED)
def test_a_malformed_file_changes_nothing(
    db: sessionmaker[Session], tmp_path: Path, content: str, message: str | None
) -> None:
    other = new_model(db)
    ingest(
        db, other, train_dir(tmp_path / "other", "epoch,loss\n1,0.1\n", "epoch,val_loss\n2,0.2\n")
    )
    ids = new_model(db)
    ingest(db, ids, train_dir(tmp_path / "good", "epoch,loss\n1,0.9\n2,0.8\n"))
    before = stored(db, ids.model, "train"), stored(db, ids.model, "val")
    with transaction(db) as session:
        model = lock_model_by_id(session, ids.model)
        assert model is not None
        retry = Ids(model.id, new_job(session, model).id)
        model.best_epoch = None
        model.step1_metric_save_yn = False
    if message is None:
        ingest(db, retry, train_dir(tmp_path / "bad", content))
        assert stored(db, ids.model, "train")[1][3]["loss"] == math.inf
        return
    with pytest.raises(MetricsError) as caught:
        ingest(db, retry, train_dir(tmp_path / "bad", content))
    assert str(caught.value) == f"metrics-parse-error: {message}"
    assert (stored(db, ids.model, "train"), stored(db, ids.model, "val")) == before
    assert not [r for r in stored(db, ids.model, "train") if r[2] == retry.job]
    assert len(stored(db, other.model, "train")) == 1
    with db() as session:
        model = session.get(Model, ids.model)
        assert model is not None and model.step1_metric_save_yn is False
        assert model.best_epoch is None


def test_a_bad_val_csv_keeps_train_rows_too(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    ingest(db, model_ids, train_dir(tmp_path / "a", "epoch,loss\n1,0.9\n"))
    with pytest.raises(MetricsError, match=r"val\.csv line 3 column 2"):
        ingest(
            db,
            model_ids,
            train_dir(
                tmp_path / "b", "epoch,loss\n1,0.5\n2,0.4\n", "epoch,val_loss\n2,0.3\n4,oops\n"
            ),
        )
    assert [r[3]["loss"] for r in stored(db, model_ids.model, "train")] == [0.9]


def test_missing_files_are_errors(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    folder = tmp_path / "train"
    write(folder / "train.csv", "epoch,loss\n1,0.5\n")
    with pytest.raises(
        MetricsError, match=r"^metrics-parse-error: val\.csv line 1: the file is missing$"
    ):
        ingest(db, model_ids, folder)
    assert count_rows(db, "tb_model_metrics_train") == 0


def big_file(path: Path, rows: int, last: str | None = None) -> Path:
    """Five metrics, ~55 bytes a row: 1,000,000 rows make a file over 50 MB."""
    body = "".join(
        f"{e},{1 / e:.14f},{(e % 997) / 997:.8f},{0.1 * 0.999 ** (e % 5000):.8f},"
        f"{e % 13}.5,{(e % 101) / 101:.4f}\n"
        for e in range(1, rows + 1)
    )
    content = "epoch,loss,accuracy,lr,grad_norm,f1\n" + body + (last or "")
    return write(path, content)


def test_a_50_mb_file_with_one_bad_cell_at_the_end(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    folder = tmp_path / "train"
    big = big_file(folder / "train.csv", 1_000_000, last="1000001,0.1,0.2,0.3,0.4,bad\n")
    write(folder / "val.csv", VAL)
    assert big.stat().st_size > 50_000_000
    with pytest.raises(MetricsError) as caught:
        ingest(db, model_ids, folder)
    assert str(caught.value) == (
        "metrics-parse-error: train.csv line 1000002 column 6: 'bad' in f1 is not a number"
    )
    assert count_rows(db, "tb_model_metrics_train") == 0
    assert count_rows(db, "tb_model_metric_series") == 0


def test_a_50_mb_file_loads_whole(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path, paths: list[str]
) -> None:
    folder = tmp_path / "train"
    big_file(folder / "train.csv", 1_000_000)
    write(folder / "val.csv", VAL)
    ingest(db, model_ids, folder)
    assert paths == ["fast", "fast"]
    assert count_rows(db, "tb_model_metrics_train", model_ids.model) == 1_000_000
    with db() as session:
        last = session.execute(
            text("SELECT epoch, m01, m04, m05 FROM tb_model_metrics_train ORDER BY 1 DESC LIMIT 1")
        ).one()
    assert tuple(last) == (1_000_000, 1e-6, 1.5, 0.9901)


@pytest.mark.parametrize(
    ("params", "val", "best"),
    [
        ({}, "epoch,val_loss,val_acc\n2,0.5,0.1\n4,0.3,0.2\n6,0.3,0.3\n8,0.4,0.9\n", 4),
        (
            {"best_metric": "val_acc", "best_mode": "max"},
            "epoch,val_loss,val_acc\n2,0.5,0.1\n4,0.3,0.9\n6,0.3,nan\n8,0.4,0.9\n",
            4,
        ),
        ({}, "epoch,val_loss\n2,nan\n4,\n6,0.7\n", 6),
        ({}, "epoch,val_loss\n2,nan\n", None),
    ],
)
def test_best_epoch_from_val_by_params(
    db: sessionmaker[Session], tmp_path: Path, params: dict, val: str, best: int | None
) -> None:
    ids = new_model(db, params)
    ingest(db, ids, train_dir(tmp_path, "epoch,loss\n1,1\n", val))
    with db() as session:
        model = session.get(Model, ids.model)
        assert model is not None and model.best_epoch == best


def test_best_metric_must_be_a_val_column(db: sessionmaker[Session], tmp_path: Path) -> None:
    ids = new_model(db, {"best_metric": "val_f1"})
    with pytest.raises(MetricsError) as caught:
        ingest(db, ids, train_dir(tmp_path, "epoch,loss\n1,1\n"))
    assert str(caught.value) == (
        "metrics-parse-error: val.csv line 1: no column 'val_f1' (params.best_metric) to pick "
        "the best epoch by; metrics: val_loss, val_accuracy"
    )
    assert count_rows(db, "tb_model_metrics_train") == 0


def test_test_rows_are_kept_per_eval_job(db: sessionmaker[Session], tmp_path: Path) -> None:
    ids = new_model(db, job_type="EVAL")
    header = "epoch,test_loss,test_accuracy,acc_a,acc_b\n"
    write(tmp_path / "e1" / "test" / "test.csv", header + "2,0.5,0.8,0.7,0.9\n")
    ingest(db, ids, tmp_path / "e1", kind="eval")
    with transaction(db) as session:
        model = lock_model_by_id(session, ids.model)
        assert model is not None
        second = Ids(model.id, new_job(session, model, "EVAL").id)
    write(tmp_path / "e2" / "test" / "test.csv", header + "4,0.4,0.85,0.8,0.9\n")
    ingest(db, second, tmp_path / "e2", kind="eval")
    ingest(db, second, tmp_path / "e2", kind="eval")  # again: replaced, not doubled
    rows = stored(db, ids.model, "test")
    assert [(e, job) for e, _, job, _ in rows] == [(2, ids.job), (4, second.job)]
    with db() as session:
        model = session.get(Model, ids.model)
        assert model is not None and model.step2_metric_save_yn is True
        test = metric_summary(session, model)["test"]
    assert test["test_accuracy"] == {
        "min": 0.8,
        "minEpoch": 2,
        "max": 0.85,
        "maxEpoch": 4,
        "last": 0.85,
        "lastEpoch": 4,
    }
    with pytest.raises(
        MetricsError, match=r"^metrics-parse-error: test/test\.csv line 1: the file is missing$"
    ):
        ingest(db, second, tmp_path / "nowhere", kind="eval")


def test_restart_deletes_the_rows_and_the_summary_follows(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    ingest(db, model_ids, train_dir(tmp_path, ODD_VALUES))
    with transaction(db) as session:
        model = lock_model_by_id(session, model_ids.model)
        assert model is not None
        assert set(metric_summary(session, model)) == {"train", "val"}
        _reset_training(session, model)
    with db() as session:
        model = session.get(Model, model_ids.model)
        assert model is not None
        assert metric_summary(session, model) == {}
    assert count_rows(db, "tb_model_metrics_train") == 0


def test_the_screen_sends_odd_blocks_the_careful_way() -> None:
    ok = b"1,0.5,nan,-inf,1e-3\n2,0.4,,Infinity,+5\n"
    assert fastcopy.screen(ok) == ok
    assert fastcopy.screen(ok.replace(b"\n", b"\r\n")) == ok
    odd = (b'1,"0.5"\n', b"1,0x10\n", b"1,0.5\n\n2,0.4\n", b"\n1,2\n", b"1,2\r3\n", b"1,\t2\n")
    for block in (*odd, b"1,NULL\n", b"1,\\.\n"):
        assert fastcopy.screen(block) is None
