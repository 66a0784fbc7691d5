"""Per-metric min / max / last with their epochs, the best epoch, and JSON for odd values.

NaN is never a min or a max (PostgreSQL would sort it above everything); ±inf are real
values. Ties go to the earliest epoch. `last` is the last row's value that is not missing.
JSON has no NaN or infinity, so those values travel as the strings "NaN", "Infinity" and
"-Infinity".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.db.models import MetricSeries, Model
from app.metrics import store

JsonValue = float | str | None
Summary = dict[str, dict[str, Any]]  # metric -> {min, minEpoch, max, maxEpoch, last, lastEpoch}


class HasValues(Protocol):
    @property
    def epoch(self) -> int: ...
    @property
    def values(self) -> tuple[float | None, ...]: ...


def json_value(value: float | None) -> JsonValue:
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def from_json(value: JsonValue) -> float | None:
    return None if value is None else float(value)


def summarize(
    names: Sequence[str], rows: Iterable[HasValues], base: Summary | None = None
) -> Summary:
    """Fold `rows` (in epoch order) into `base`, a summary of the rows before them."""
    state = [_Running.of(base.get(name) if base else None) for name in names]
    for row in rows:
        for running, value in zip(state, row.values, strict=True):
            running.add(row.epoch, value)
    return {name: running.as_json() for name, running in zip(names, state, strict=True)}


def best_epoch(rows: Iterable[HasValues], index: int, mode: str) -> int | None:
    """The epoch of the best value of metric `index` (mode "min" or "max"), earliest on ties."""
    best: float | None = None
    epoch: int | None = None
    for row in rows:
        value = row.values[index]
        if value is None or math.isnan(value):
            continue
        if best is None or (value < best if mode == "min" else value > best):
            best, epoch = value, row.epoch
    return epoch


def _split_summary(session: Session, series: MetricSeries | None) -> Summary | None:
    """The train or val summary: cached per series generation, computed when missing."""
    if series is None or not store.has_rows(session, series.split, series.model_id):
        return None  # never ingested, or a restart deleted the rows (the series row remains)
    cached = series.summary
    if cached and cached.get("generation") == series.generation:
        # JSONB does not keep key order: give the metrics back in file order.
        stored = cached["metrics"]
        return {name: _ordered(stored[name]) for name in series.metric_names if name in stored}
    summary = _compute(session, series)
    store.cache_summary(session, series, {"generation": series.generation, "metrics": summary})
    return summary


def _test_summary(
    session: Session, model_id: int, test_series: list[MetricSeries]
) -> Summary | None:
    """Over the rows of all EVAL jobs (`test_series`, the model's): the best and worst tested
    epochs of each metric."""
    per_metric: dict[str, list[tuple[int, float | None]]] = {}
    for series in test_series:
        names = series.metric_names
        for row in store.read_rows(session, "test", model_id, len(names), job_id=series.job_id):
            for name, value in zip(names, row.values, strict=True):
                per_metric.setdefault(name, []).append((row.epoch, value))
    if not per_metric:
        return None
    out: Summary = {}
    for name, points in per_metric.items():
        running = _Running.of(None)
        for epoch, value in points:
            running.add(epoch, value)
        out[name] = running.as_json()
    return out


def metric_summary(session: Session, model: Model) -> dict[str, Summary]:
    """{split: {metric: {min, minEpoch, max, maxEpoch, last, lastEpoch}}} for the splits
    that have rows (train, val, test)."""
    return _model_summary(session, model.id)


def _model_summary(session: Session, model_id: int) -> dict[str, Summary]:
    # Every series row of the model in one query (a model without metrics costs just it).
    series = store.all_series(session, model_id)
    out: dict[str, Summary] = {}
    for split in ("train", "val"):
        # At most one per model and split; store.find_series takes the newest as well.
        found = [s for s in series if s.split == split]
        summary = _split_summary(session, found[-1] if found else None)
        if summary is not None:
            out[split] = summary
    test = _test_summary(session, model_id, [s for s in series if s.split == "test"])
    if test is not None:
        out["test"] = test
    return out


def metric_summaries(session: Session, model_ids: Iterable[int]) -> dict[int, dict[str, Summary]]:
    """metric_summary for each model of a list page, by model id (cached summaries make
    this a few indexed lookups per model)."""
    return {model_id: _model_summary(session, model_id) for model_id in model_ids}


def _compute(session: Session, series: MetricSeries) -> Summary:
    names = series.metric_names
    return summarize(names, store.read_rows(session, series.split, series.model_id, len(names)))


def _ordered(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry.get(key) for key in _KEYS}


_KEYS = ("min", "minEpoch", "max", "maxEpoch", "last", "lastEpoch")


class _Running:
    __slots__ = ("last", "last_epoch", "max", "max_epoch", "min", "min_epoch")

    def __init__(self) -> None:
        self.min: float | None = None
        self.max: float | None = None
        self.last: float | None = None
        self.min_epoch: int | None = None
        self.max_epoch: int | None = None
        self.last_epoch: int | None = None

    @classmethod
    def of(cls, base: dict[str, Any] | None) -> _Running:
        running = cls()
        if base:
            running.min, running.min_epoch = from_json(base["min"]), base["minEpoch"]
            running.max, running.max_epoch = from_json(base["max"]), base["maxEpoch"]
            running.last, running.last_epoch = from_json(base["last"]), base["lastEpoch"]
        return running

    def add(self, epoch: int, value: float | None) -> None:
        if value is None:
            return
        self.last, self.last_epoch = value, epoch
        if math.isnan(value):
            return
        if self.min is None or value < self.min:
            self.min, self.min_epoch = value, epoch
        if self.max is None or value > self.max:
            self.max, self.max_epoch = value, epoch

    def as_json(self) -> dict[str, Any]:
        return {
            "min": json_value(self.min),
            "minEpoch": self.min_epoch,
            "max": json_value(self.max),
            "maxEpoch": self.max_epoch,
            "last": json_value(self.last),
            "lastEpoch": self.last_epoch,
        }
