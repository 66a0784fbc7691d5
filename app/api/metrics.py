"""/api/models/<uuid>/metrics: chart series per split, the per-metric summary, test rows.

Values are JSON numbers, null for a missing cell, and the strings "NaN", "Infinity" and
"-Infinity" for what JSON cannot hold. Long series are thinned by min/max buckets
(app/metrics/downsample.py), keeping the first, last and best-epoch rows.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, request

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import is_ascii_digits, model_or_404, parse_uuid, quote
from app.appstate import state
from app.metrics.series import CHART_SPLITS, UnknownMetric, chart, provisional_best, test_rows
from app.metrics.summary import metric_summary

bp = Blueprint("metrics", __name__, url_prefix="/api/models")

DEFAULT_POINTS = 500
MIN_POINTS, MAX_POINTS = 10, 100_000


@bp.get("/<model_uuid>/metrics")
def series(model_uuid: str) -> tuple[Response, int]:
    key = parse_uuid(model_uuid)
    split = request.args.get("split", "train")
    if split not in CHART_SPLITS:
        raise ApiError(
            400,
            "INVALID_QUERY",
            f"split must be one of {', '.join(CHART_SPLITS)} (test rows: /metrics/test), "
            f"got '{split}'.",
        )
    max_points = _max_points(request.args.get("maxPoints"))
    wanted = [m.strip() for m in request.args.get("metrics", "").split(",") if m.strip()]
    with state().reads() as session:
        model = model_or_404(session, key)
        try:
            return ok(chart(session, model, split, max_points, wanted or None))
        except UnknownMetric as exc:
            raise ApiError(400, "INVALID_QUERY", f"metrics: {exc}.") from None


@bp.get("/<model_uuid>/metrics/summary")
def summary(model_uuid: str) -> tuple[Response, int]:
    key = parse_uuid(model_uuid)
    with state().reads() as session:
        model = model_or_404(session, key)
        params = model.params or {}
        best = model.best_epoch
        answer: responses.MetricsOverview = {
            "bestEpoch": best if best is not None else provisional_best(session, model),
            "bestEpochFinal": best is not None,
            "bestMetric": params.get("best_metric", "val_loss"),
            "bestMode": params.get("best_mode", "min"),
            "splits": cast(responses.MetricSummary, metric_summary(session, model)),
        }
        return ok(answer)


@bp.get("/<model_uuid>/metrics/test")
def test(model_uuid: str) -> tuple[Response, int]:
    key = parse_uuid(model_uuid)
    with state().reads() as session:
        return ok(test_rows(session, model_or_404(session, key)))


def _max_points(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_POINTS
    if not is_ascii_digits(raw) or not MIN_POINTS <= int(raw) <= MAX_POINTS:
        raise ApiError(
            400,
            "INVALID_QUERY",
            f"maxPoints must be an integer from {MIN_POINTS} to {MAX_POINTS}, got {quote(raw)}.",
        )
    return int(raw)
