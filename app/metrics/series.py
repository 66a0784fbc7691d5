"""What the chart endpoints return: a split's curve (thinned when long) and the test rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db.models import Model
from app.metrics import downsample, store
from app.metrics.summary import best_epoch, json_value

CHART_SPLITS = ("train", "val")


class UnknownMetric(ValueError):
    pass


def chart(
    session: Session, model: Model, split: str, max_points: int, metrics: list[str] | None = None
) -> dict[str, Any]:
    """`{split, columns, points, total, downsampled, method, bestEpoch}`; each point is
    `{"epoch", "step", <metric>: value}` (step is null when the CSV has none)."""
    best = model.best_epoch if model.best_epoch is not None else provisional_best(session, model)
    series = store.find_series(session, model.id, split)
    names = list(series.metric_names) if series is not None else []
    shown = metrics or names
    unknown = [name for name in shown if name not in names]
    if unknown:
        raise UnknownMetric(
            f"no metric {', '.join(map(repr, unknown))} in {split}; metrics: {', '.join(names)}"
        )
    rows = store.read_rows(session, split, model.id, len(names)) if series is not None else []
    at = [names.index(name) for name in shown]
    columns = [[row.values[i] for row in rows] for i in at]
    best_rows = [i for i, row in enumerate(rows) if row.epoch == best][-1:]
    chosen, method = downsample.pick(len(rows), columns, max_points, best_rows)
    has_step = bool(series and series.has_step)
    points = []
    for index in chosen:
        row = rows[index]
        point: dict[str, Any] = {"epoch": row.epoch, "step": row.step if has_step else None}
        for name, i in zip(shown, at, strict=True):
            point[name] = json_value(row.values[i])
        points.append(point)
    return {
        "split": split,
        "columns": shown if rows else [],
        "points": points,
        "total": len(rows),
        "downsampled": method != downsample.NONE,
        "method": method,
        "bestEpoch": best,
    }


def test_rows(session: Session, model: Model) -> dict[str, Any]:
    """Every EVAL job's test.csv rows: `{columns, rows: [{jobId, epoch, step, <metric>…}]}`."""
    columns: list[str] = []
    out: list[dict[str, Any]] = []
    for series in store.test_series(session, model.id):
        names = series.metric_names
        columns += [name for name in names if name not in columns]
        for row in store.read_rows(session, "test", model.id, len(names), job_id=series.job_id):
            item: dict[str, Any] = {
                "jobId": row.job_id,
                "epoch": row.epoch,
                "step": row.step if series.has_step else None,
            }
            item.update({name: json_value(v) for name, v in zip(names, row.values, strict=True)})
            out.append(item)
    return {"columns": columns, "rows": out}


def provisional_best(session: Session, model: Model) -> int | None:
    """While training runs (best_epoch not yet set): the best val epoch so far."""
    series = store.find_series(session, model.id, "val")
    metric = str((model.params or {}).get("best_metric", "val_loss"))
    mode = str((model.params or {}).get("best_mode", "min")).lower()
    if series is None or metric not in series.metric_names or mode not in ("min", "max"):
        return None
    rows = store.read_rows(session, "val", model.id, len(series.metric_names))
    return best_epoch(rows, series.metric_names.index(metric), mode)
