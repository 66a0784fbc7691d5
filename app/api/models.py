"""/api/models: create, list, detail."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import model_or_404, parse_json_body, parse_query, parse_uuid
from app.api.schemas import CreateModel, ListQuery
from app.api.serialize import model_detail, model_summary
from app.appstate import state
from app.metrics import metric_summaries, metric_summary
from app.services import models
from app.services.queries import jobs_of, list_models

bp = Blueprint("models", __name__, url_prefix="/api/models")


@bp.post("")
def create_model() -> tuple[Response, int]:
    body = parse_json_body(CreateModel)
    rt = state()
    try:
        model = models.create_model(
            rt.sessions,
            rt.settings,
            model_no=body.model_no,
            model_ver=body.model_ver,
            train_type=body.train_type.value,
            memo=body.memo,
            params=body.params.model_dump(mode="json"),
            image=body.image,
            dataset=body.dataset,
            resources=body.resources.model_dump(exclude_none=True),
            stall_timeout_s=body.stall_timeout_s,
        )
    except models.InvalidField as exc:
        raise ApiError(400, "INVALID_FIELD", str(exc)) from None
    except models.ImageNotFound as exc:
        raise ApiError(400, "IMAGE_NOT_FOUND", str(exc)) from None
    return ok(model_detail(model, [], rt.settings.tz), 201)


@bp.get("/list")
def list_all() -> tuple[Response, int]:
    query = parse_query(ListQuery)
    rt = state()
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
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        data = model_detail(model, jobs_of(session, model), rt.settings.tz)
        data["metricSummary"] = cast(responses.MetricSummary, metric_summary(session, model))
        return ok(data)
