"""The best value of one metric per model, in SQL: what sorts the model list
(`sort=best:val_loss`), fills its metric column and names the metrics a user can pick.

A metric lives in a slot column (m01…m32) whose number can differ per model: the model's series
row (tb_model_metric_series.metric_names) says which. So a query first finds each model's slot
for the name (one CASE over the names array per series row, not per metric row), then folds
that slot's values with MIN or MAX. NaN is never a best value (as in summary.py); ±inf are real
values. Metrics past the 32nd column of a CSV (kept in `extra`) cannot be ranked.

Which end is best (docs/dashboard.md, "Sort, search and the metric column"): a name with "loss"
or "err" in it, or a word of `_MIN_WORDS`, is minimised, every other metric (accuracy, f1,
auc, …) maximised; `<metric>:min` / `<metric>:max` overrides the rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Subquery, bindparam, case, func, literal_column, select
from sqlalchemy.orm import Session

from app.db.models import METRIC_SLOTS, MetricSeries, Model
from app.metrics import store
from app.metrics.summary import JsonValue, json_value

RANKED_SPLITS = ("val", "train")  # a bare name is looked up in this order
_MIN_WORDS = frozenset({"mse", "mae", "rmse", "nll", "perplexity", "ppl", "wer", "cer"})
_NAME = re.compile(r"[^\s:,]{1,128}")  # a CSV header cell, as far as a query can carry one
# PostgreSQL reads it as a double NaN; SQLite stores a NaN as this text (store.py).
_NAN: ColumnElement[Any] = literal_column("'NaN'")


def default_mode(name: str) -> str:
    """"min" for a metric that is better lower (val_loss, error_rate, val_mse), else "max"."""
    lowered = name.lower()
    words = set(re.split(r"[^a-z0-9]+", lowered))
    return "min" if "loss" in lowered or "err" in lowered or words & _MIN_WORDS else "max"


@dataclass(frozen=True)
class MetricKey:
    """`[train.|val.]<name>[:min|:max]`: one metric of one split and which end is best.
    split None: not given (resolve_split picks it)."""

    name: str
    split: str | None
    mode: str

    @classmethod
    def parse(cls, text: str) -> MetricKey:
        """ValueError with the reason when `text` is not such a key."""
        body, mode = text, ""
        if ":" in text:
            body, _, mode = text.rpartition(":")
            if mode not in ("min", "max"):
                raise ValueError(f"the direction after ':' must be min or max, got {mode!r}")
        split = None
        for prefix in RANKED_SPLITS:
            if body.startswith(prefix + "."):
                split, body = prefix, body[len(prefix) + 1 :]
                break
        if not _NAME.fullmatch(body):
            raise ValueError(
                "a metric name is 1 to 128 characters without spaces, ':' or ',', "
                f"got {body!r}"
            )
        return cls(body, split, mode or default_mode(body))

    def label(self) -> str:
        return f"{self.split}.{self.name}" if self.split else self.name


def _slot_of_metric() -> ColumnElement[Any]:
    """SQL: the 1-based slot of the bound `metric` in a series row's names, NULL if absent."""
    names = MetricSeries.metric_names
    metric: ColumnElement[str] = bindparam("metric")
    return case(
        *((names[i].as_string() == metric, i + 1) for i in range(METRIC_SLOTS)), else_=None
    )


def _slot_value(split: str, slot: ColumnElement[Any]) -> ColumnElement[Any]:
    table = store.table_of(split)
    return case(
        {i + 1: table.c[f"m{i + 1:02d}"] for i in range(METRIC_SLOTS)}, value=slot
    )


def _slots(split: str, model_ids: bool = False) -> Subquery:
    """Each model's slot of `metric` in `split` (only models that have it); `model_ids`: only
    the bound `ids`."""
    query = select(MetricSeries.model_id, _slot_of_metric().label("slot")).where(
        MetricSeries.split == split
    )
    if model_ids:
        query = query.where(MetricSeries.model_id.in_(bindparam("ids", expanding=True)))
    return query.subquery("metric_slots")


def best_values(split: str, mode: str) -> Subquery:
    """(model_id, best) of the bound `metric` for every model that has a value of it: the
    subquery the list joins to sort by it (services/queries.py)."""
    table = store.table_of(split)
    slots = _slots(split)
    value = _slot_value(split, slots.c.slot)
    fold = func.min(value) if mode == "min" else func.max(value)
    return (
        select(table.c.model_id, fold.label("best"))
        .join(slots, slots.c.model_id == table.c.model_id)
        .where(slots.c.slot.is_not(None), value != _NAN)
        .group_by(table.c.model_id)
        .subquery("best_values")
    )


@dataclass(frozen=True)
class Best:
    value: JsonValue
    epoch: int


def best_of(session: Session, key: MetricKey, model_ids: Sequence[int]) -> dict[int, Best]:
    """Model id -> the best value of `key` and its epoch (the earliest on ties), for the models
    of `model_ids` that have one. One query for a whole list page."""
    if not model_ids:
        return {}
    split = key.split or "val"
    table = store.table_of(split)
    slots = _slots(split, model_ids=True)
    value = _slot_value(split, slots.c.slot)
    order = value.asc() if key.mode == "min" else value.desc()
    rank = func.row_number().over(
        partition_by=table.c.model_id, order_by=(order, table.c.epoch, table.c.step)
    )
    ranked = (
        select(table.c.model_id, table.c.epoch, value.label("value"), rank.label("rank"))
        .join(slots, slots.c.model_id == table.c.model_id)
        .where(slots.c.slot.is_not(None), value != _NAN)
        .subquery("ranked")
    )
    rows = session.execute(
        select(ranked.c.model_id, ranked.c.epoch, ranked.c.value).where(ranked.c.rank == 1),
        {"metric": key.name, "ids": list(model_ids)},
    )
    return {
        model_id: Best(json_value(_float(raw)), epoch) for model_id, epoch, raw in rows
    }


def _float(raw: Any) -> float | None:
    return None if raw is None else float(raw)


def resolve_split(session: Session, key: MetricKey) -> MetricKey:
    """`key` with its split: the given one, else the first of RANKED_SPLITS in which some model
    has the metric. LookupError (naming the metrics there are) when none has it while some
    model has metrics: a misspelt name, not a list with no metrics yet."""
    if key.split is not None:
        return key
    for split in RANKED_SPLITS:
        found = session.execute(
            select(MetricSeries.model_id)
            .where(MetricSeries.split == split, _slot_of_metric().is_not(None))
            .limit(1),
            {"metric": key.name},
        ).first()
        if found is not None:
            return MetricKey(key.name, split, key.mode)
    known = metric_names(session)
    if any(known.values()):
        listed = "; ".join(f"{split}: {', '.join(names)}" for split, names in known.items())
        raise LookupError(f"no model has a metric {key.name!r} ({listed})")
    return MetricKey(key.name, "val", key.mode)


def metric_names(session: Session) -> dict[str, list[str]]:
    """{"val": [...], "train": [...]}: every metric name some model has (slots 1-32), sorted."""
    out: dict[str, list[str]] = {split: [] for split in RANKED_SPLITS}
    rows = session.execute(
        select(MetricSeries.split, MetricSeries.metric_names)
        .where(MetricSeries.split.in_(RANKED_SPLITS))
        .distinct()
    )
    for split, names in rows:
        seen = out[split]
        seen += [name for name in names[:METRIC_SLOTS] if name not in seen]
    return {split: sorted(names) for split, names in out.items()}



def own_best(
    session: Session, model_ids: Sequence[int]
) -> dict[int, tuple[MetricKey, Best | None]]:
    """Model id -> (its params' best_metric in val by best_mode, its best value): the value at
    its best epoch (the same rule picks that epoch; while it trains, the best so far)."""
    if not model_ids:
        return {}
    rows = session.execute(
        select(
            Model.id,
            Model.params["best_metric"].as_string(),
            Model.params["best_mode"].as_string(),
        ).where(Model.id.in_(model_ids))
    )
    keys: dict[int, MetricKey] = {}
    for model_id, metric, raw_mode in rows:
        mode = (raw_mode or "min").lower()
        keys[model_id] = MetricKey(metric or "val_loss", "val", mode if mode == "max" else "min")
    out: dict[int, tuple[MetricKey, Best | None]] = {}
    for key in set(keys.values()):  # one query per (metric, mode): usually one
        ids = [model_id for model_id, k in keys.items() if k == key]
        found = best_of(session, key, ids)
        out.update({model_id: (key, found.get(model_id)) for model_id in ids})
    return out
