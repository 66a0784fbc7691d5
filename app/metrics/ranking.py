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

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Double,
    Integer,
    Subquery,
    TextClause,
    bindparam,
    column,
    select,
    text,
)
from sqlalchemy.orm import Session

from app.db.models import METRIC_SLOTS, MetricSeries, Model
from app.metrics import store
from app.metrics.summary import JsonValue, json_value

RANKED_SPLITS = ("val", "train")  # a bare name is looked up in this order
_MIN_WORDS = frozenset({"mse", "mae", "rmse", "nll", "perplexity", "ppl", "wer", "cer"})
_NAME = re.compile(r"[^\s:,]{1,128}")  # a CSV header cell, as far as a query can carry one


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


# The statements below are SQL text built once per dialect, split and direction: built as
# expressions, the 32-way CASEs cost ~100 ms of Python per request to build, compile and
# hash, for a query PostgreSQL runs in well under a millisecond for a page.

_VALUE = "CASE s.slot " + " ".join(
    f"WHEN {i} THEN v.m{i:02d}" for i in range(1, METRIC_SLOTS + 1)
) + " END"


def _slot_sql(dialect: str) -> str:
    """SQL: the 1-based place of :metric in the series row `s`'s names, NULL if absent."""
    if dialect == "postgresql":
        name = "s.metric_names ->> {i}"
    else:
        name = "json_extract(s.metric_names, '$[{i}]')"
    whens = " ".join(
        f"WHEN {name.format(i=i)} = :metric THEN {i + 1}" for i in range(METRIC_SLOTS)
    )
    return f"CASE {whens} END"


def _values_sql(dialect: str, split: str, only_ids: bool) -> str:
    """SQL: (model_id, epoch, step, value) of :metric for every row of `split` that has one
    (not NaN); `only_ids`: only the models :ids."""
    assert split in RANKED_SPLITS  # it goes into the text
    table = store.table_of(split).name
    ids = " AND s.model_id IN :ids" if only_ids else ""
    # OFFSET 0: PostgreSQL must not fold this in, or it finds the slot again for every row.
    fence = " OFFSET 0" if dialect == "postgresql" else ""
    slots = (
        f"SELECT s.model_id, {_slot_sql(dialect)} AS slot FROM tb_model_metric_series s "
        f"WHERE s.split = '{split}'{ids}{fence}"
    )
    return (
        f"SELECT v.model_id, v.epoch, v.step, {_VALUE} AS value FROM {table} v "
        f"JOIN ({slots}) s ON s.model_id = v.model_id WHERE s.slot IS NOT NULL"
    )


@functools.cache
def best_values(split: str, mode: str, dialect: str) -> Subquery:
    """(model_id, best) of :metric for every model that has a value of it: the subquery the
    list joins to sort by it (services/queries.py)."""
    fold = "MIN" if mode == "min" else "MAX"
    sql = (
        f"SELECT x.model_id AS model_id, {fold}(x.value) AS best "
        f"FROM ({_values_sql(dialect, split, False)}) x "
        f"WHERE x.value <> 'NaN' GROUP BY x.model_id"
    )
    return text(sql).columns(column("model_id", Integer), column("best", Double)).subquery(
        "best_values"
    )


@functools.cache
def _best_of_statement(split: str, mode: str, dialect: str) -> TextClause:
    order = "ASC" if mode == "min" else "DESC"
    sql = (
        "SELECT r.model_id, r.epoch, r.value FROM ("
        f"SELECT x.model_id, x.epoch, x.value, ROW_NUMBER() OVER (PARTITION BY x.model_id "
        f"ORDER BY x.value {order}, x.epoch, x.step) AS place "
        f"FROM ({_values_sql(dialect, split, True)}) x WHERE x.value <> 'NaN'"
        ") r WHERE r.place = 1"
    )
    return text(sql).bindparams(bindparam("ids", expanding=True))


@functools.cache
def _has_metric_statement(dialect: str) -> TextClause:
    return text(
        "SELECT s.model_id FROM tb_model_metric_series s "
        f"WHERE s.split = :split AND {_slot_sql(dialect)} IS NOT NULL LIMIT 1"
    )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


@dataclass(frozen=True)
class Best:
    value: JsonValue
    epoch: int


def best_of(session: Session, key: MetricKey, model_ids: Sequence[int]) -> dict[int, Best]:
    """Model id -> the best value of `key` and its epoch (the earliest on ties), for the models
    of `model_ids` that have one. One query for a whole list page."""
    if not model_ids:
        return {}
    statement = _best_of_statement(key.split or "val", key.mode, _dialect(session))
    rows = session.execute(statement, {"metric": key.name, "ids": list(model_ids)})
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
    statement = _has_metric_statement(_dialect(session))
    for split in RANKED_SPLITS:
        found = session.execute(statement, {"metric": key.name, "split": split}).first()
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
