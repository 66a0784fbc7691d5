"""GET /api/models/compare and /api/models/metric-names: what the dashboard's compare view
and its metric pickers read (docs/dashboard.md, "Compare").

Curves come from the per-model series endpoint (app/api/metrics.py); this answers the table:
each model's parameters and per-metric min / max / last, and which parameters differ.
"""

from __future__ import annotations

import json
from typing import Any, cast

from flask import Blueprint, Response, request
from sqlalchemy import select

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import parse_uuid
from app.appstate import state
from app.db.models import Model
from app.domain.states import ModelStatus
from app.metrics import metric_summaries, ranking

bp = Blueprint("compare", __name__, url_prefix="/api/models")

MAX_COMPARED = 12  # curves of more runs than this on one chart cannot be told apart


@bp.get("/compare")
def compare() -> tuple[Response, int]:
    raw = [part.strip() for part in request.args.get("uuids", "").split(",") if part.strip()]
    if not raw or len(raw) > MAX_COMPARED:
        raise ApiError(
            400,
            "INVALID_QUERY",
            f"uuids: give 1 to {MAX_COMPARED} comma-separated model uuids, got {len(raw)}.",
        )
    keys = list(dict.fromkeys(parse_uuid(part) for part in raw))  # each once, in order
    with state().reads() as session:
        found = {m.uuid: m for m in session.scalars(select(Model).where(Model.uuid.in_(keys)))}
        missing = [str(key) for key in keys if key not in found]
        if missing:
            raise ApiError(404, "MODEL_NOT_FOUND", f"No model with uuid {', '.join(missing)}.")
        chosen = [found[key] for key in keys]
        summaries = metric_summaries(session, [m.id for m in chosen])
        models = [_compared(m, summaries[m.id]) for m in chosen]
    answer: responses.Comparison = {
        "models": models,
        "differingParams": differing_keys([m["params"] for m in models]),
    }
    return ok(answer)


@bp.get("/metric-names")
def metric_names() -> tuple[Response, int]:
    with state().reads() as session:
        names = ranking.metric_names(session)
    answer: responses.MetricNames = {"val": names["val"], "train": names["train"]}
    return ok(answer)


def differing_keys(params: list[dict[str, Any]]) -> list[str]:
    """The keys (sorted) whose values are not all equal; a key some lack differs."""
    keys = sorted({key for p in params for key in p})
    return [key for key in keys if len({_comparable(p, key) for p in params}) > 1]


def _comparable(params: dict[str, Any], key: str) -> str:
    # JSON text with sorted keys: nested objects compare by content; "" marks an absent key.
    return json.dumps(params[key], sort_keys=True) if key in params else ""


def _compared(model: Model, summary: Any) -> responses.ComparedModel:
    params = model.params or {}
    return {
        "uuid": str(model.uuid),
        "modelNo": model.model_no,
        "modelVer": model.model_ver,
        "memo": model.memo,
        "statusCd": model.status_cd,
        "statusName": ModelStatus(model.status_cd).display_name,
        "bestEpoch": model.best_epoch,
        "bestMetric": str(params.get("best_metric", "val_loss")),
        "bestMode": str(params.get("best_mode", "min")),
        "params": params,
        "metricSummary": cast(responses.MetricSummary, summary),
    }
