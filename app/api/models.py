"""/api/models: create, list, detail."""

from __future__ import annotations

import json
from typing import Any, cast

from flask import Blueprint, Response

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import model_or_404, parse_json_body, parse_query, parse_uuid
from app.api.schemas import CreateModel, ListQuery
from app.api.serialize import model_detail, model_summary
from app.db.models import Model
from app.db.session import transaction
from app.metrics import metric_summaries, metric_summary
from app.runtime import runtime
from app.services.images import missing_image
from app.services.queries import jobs_of, list_models

bp = Blueprint("models", __name__, url_prefix="/api/models")


@bp.post("")
def create_model() -> tuple[Response, int]:
    body = parse_json_body(CreateModel)
    rt = runtime()
    if body.dataset and not (rt.settings.dataset_root / body.dataset).is_dir():
        raise ApiError(
            400, "INVALID_FIELD", f"dataset: no dataset '{body.dataset}' under DATASET_ROOT."
        )
    params = body.params.model_dump(mode="json")
    _require_params_fit(params, rt.settings.max_params_bytes)
    image = body.image or rt.settings.default_image
    with transaction(rt.sessions) as session:
        missing = missing_image(session, image)
        if missing is not None:
            raise ApiError(400, "IMAGE_NOT_FOUND", f"image: {missing}")
        model = Model(
            model_no=body.model_no,
            model_ver=body.model_ver,
            train_type=body.train_type.value,
            memo=body.memo,
            params=params,
            image=image,
            dataset=body.dataset,
            resources=body.resources.model_dump(exclude_none=True),
        )
        session.add(model)
        session.flush()
        data = model_detail(model, [], rt.settings.tz)
    return ok(data, 201)


def _require_params_fit(params: dict[str, Any], limit: int) -> None:
    """Params travel with every job (database row, queue message, trainer argv): keep them
    small whatever the body limit is."""
    size = len(json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limit:
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"params: {size} bytes as JSON, more than the {limit} allowed (API_MAX_PARAMS_BYTES).",
        )


@bp.get("/list")
def list_all() -> tuple[Response, int]:
    query = parse_query(ListQuery)
    rt = runtime()
    with rt.reads() as session:
        page = list_models(
            session, query.status, query.model_no, query.page, query.size, rt.list_counts
        )
        tz = rt.settings.tz
        content = [model_summary(model, tz) for model in page.items]
        if query.with_summary:
            summaries = metric_summaries(session, page.items)
            for item, model in zip(content, page.items, strict=True):
                item["metricSummary"] = cast(responses.MetricSummary, summaries[model.id])
    answer: responses.ModelPage = {
        "content": content,
        "totalElements": page.total,
        "totalPages": page.pages,
    }
    return ok(answer)


@bp.get("/<model_uuid>")
def detail(model_uuid: str) -> tuple[Response, int]:
    key = parse_uuid(model_uuid)
    rt = runtime()
    with rt.reads() as session:
        model = model_or_404(session, key)
        data = model_detail(model, jobs_of(session, model), rt.settings.tz)
        data["metricSummary"] = cast(responses.MetricSummary, metric_summary(session, model))
        return ok(data)
