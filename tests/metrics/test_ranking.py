"""Ranking models by a metric's best value (app/metrics/ranking.py) through the list query, on
PostgreSQL and on the embedded SQLite, from curves stored by the real ingest path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db.migrate import upgrade
from app.db.session import make_engine, make_session_factory
from app.metrics import ranking
from app.services.queries import CountCache, ListOrder, list_models
from tests.metrics.conftest import ingest, new_model, write


@pytest.fixture(params=["postgresql", "sqlite"])
def factory(request, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgresql":
        yield request.getfixturevalue("db")
        return
    url = f"sqlite:///{tmp_path / 'trainyard.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _model(factory: sessionmaker[Session], folder: Path, val: str, train: str) -> int:
    ids = new_model(factory)
    write(folder / "val.csv", val)
    write(folder / "train.csv", train)
    ingest(factory, ids, folder)
    return ids.model


def _ids(factory: sessionmaker[Session], order: ListOrder, metric: str) -> list[int]:
    with factory() as session:
        page = list_models(session, "", "", 0, 20, CountCache(0), order=order, metric=metric)
        return [row.id for row in page.items]


def test_sorts_by_the_best_value_whatever_slot_holds_it(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    train = "epoch,loss\n1,0.9\n2,0.8\n"
    # b keeps val_loss in another column and has a NaN below its best: NaN is never best.
    a = _model(factory, tmp_path / "a", "epoch,val_loss,val_acc\n2,0.5,0.7\n4,0.4,0.8\n", train)
    b = _model(factory, tmp_path / "b", "epoch,val_acc,val_loss\n2,0.6,nan\n4,0.9,0.3\n", train)
    c = _model(factory, tmp_path / "c", "epoch,val_loss,val_acc\n2,-inf,0.1\n4,0.6,0.2\n", train)
    none = new_model(factory).model  # no curves: last, whichever direction

    by_loss = ListOrder(metric_split="val", metric_mode="min", descending=False)
    assert _ids(factory, by_loss, "val_loss") == [c, b, a, none]
    worst_first = ListOrder(metric_split="val", metric_mode="min", descending=True)
    assert _ids(factory, worst_first, "val_loss") == [a, b, c, none]
    by_acc = ListOrder(metric_split="val", metric_mode="max", descending=True)
    assert _ids(factory, by_acc, "val_acc") == [b, a, c, none]

    with factory() as session:
        key = ranking.MetricKey.parse("val_acc")
        assert ranking.resolve_split(session, key) == ranking.MetricKey("val_acc", "val", "max")
        best = ranking.best_of(session, key.__class__("val_acc", "val", "max"), [a, b, none])
        assert best == {a: ranking.Best(0.8, 4), b: ranking.Best(0.9, 4)}
        lowest = ranking.best_of(session, ranking.MetricKey("val_loss", "val", "min"), [c])
        assert lowest == {c: ranking.Best("-Infinity", 2)}
        # A bare train metric is found in train.csv; an unknown one names what there is.
        assert ranking.resolve_split(session, ranking.MetricKey.parse("loss")).split == "train"
        with pytest.raises(LookupError, match="val: val_acc, val_loss; train: loss"):
            ranking.resolve_split(session, ranking.MetricKey.parse("val_lss"))
        assert ranking.metric_names(session) == {"val": ["val_acc", "val_loss"], "train": ["loss"]}
        own = ranking.own_best(session, [a, b])
        assert own[a] == (ranking.MetricKey("val_loss", "val", "min"), ranking.Best(0.4, 4))


def test_search_matches_version_or_memo_literally(factory: sessionmaker[Session]) -> None:
    from sqlalchemy import update

    from app.db.models import Model

    ids = [new_model(factory).model for _ in range(3)]
    with factory.begin() as session:
        for model_id, ver, memo in zip(
            ids, ["v2.0-Base", "v3_rc", "v4"], ["기준 모델", None, "100% 데이터"], strict=True
        ):
            session.execute(
                update(Model).where(Model.id == model_id).values(model_ver=ver, memo=memo)
            )

    def found(search: str) -> list[int]:
        with factory() as session:
            page = list_models(session, "", "", 0, 20, CountCache(0), search=search)
            assert page.total == len(page.items)
            return sorted(row.id for row in page.items)

    assert found("base") == [ids[0]]  # any case
    assert found("기준") == [ids[0]]  # the memo
    assert found("_") == [ids[1]]  # _ and % are themselves, not wildcards
    assert found("100%") == [ids[2]]
    assert found("v") == ids
    assert found("nothing") == []


def test_default_direction_rule() -> None:
    assert [ranking.default_mode(n) for n in ("val_loss", "error_rate", "val_mae")] == ["min"] * 3
    assert [ranking.default_mode(n) for n in ("val_accuracy", "f1", "auc")] == ["max"] * 3
    assert ranking.MetricKey.parse("train.loss:max") == ranking.MetricKey("loss", "train", "max")
    for bad in ("val_loss:up", "", "two words", "val."):
        with pytest.raises(ValueError):
            ranking.MetricKey.parse(bad)
