"""/api/models: create, list, detail."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import model_not_found, parse_json_body, parse_query, parse_uuid
from app.api.schemas import CreateModel, ListQuery
from app.api.serialize import model_detail, model_summary
from app.appstate import state
from app.metrics import metric_summaries, metric_summary
from app.services import models
from app.services.queries import find_model_detail, list_models, queue_positions

bp = Blueprint("models", __name__, url_prefix="/api/models")


@bp.post("")
def create_model() -> tuple[Response, int]:
    body = parse_json_body(CreateModel)
    rt = state()
    _require_runtime_allowed(body, rt.settings.job_network_allowed)
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
            priority=body.priority,
            uses_dataset=body.uses_dataset,
            shm_size_mb=body.shm_size_mb,
            env=body.env,
            network=body.network,
        )
    except models.InvalidField as exc:
        raise ApiError(400, "INVALID_FIELD", str(exc)) from None
    except models.ImageNotFound as exc:
        raise ApiError(400, "IMAGE_NOT_FOUND", str(exc)) from None
    return ok(model_detail(model, [], rt.settings.tz), 201)


def _require_runtime_allowed(body: CreateModel, network_allowed: bool) -> None:
    """What the schema alone cannot say: the deployment's network policy, and an shm that
    fits the memory the model asks for (trainer/README.md, "Sandbox")."""
    if body.network and not network_allowed:
        raise ApiError(
            400,
            "INVALID_FIELD",
            "network: this deployment gives jobs no network (JOB_NETWORK_ALLOWED=0); "
            "leave network false or ask the operator.",
        )
    memory_mb = body.resources.memory_mb
    if body.shm_size_mb is not None and memory_mb is not None and body.shm_size_mb > memory_mb:
        raise ApiError(
            400,
            "INVALID_FIELD",
            f"shmSizeMb: {body.shm_size_mb} MB is more than resources.memory_mb "
            f"({memory_mb} MB); /dev/shm counts against the memory limit.",
        )


@bp.get("/list")
def list_all() -> tuple[Response, int]:
    query = parse_query(ListQuery)
    rt = state()
    with rt.reads() as session:
        page = list_models(
            session, query.status, query.model_no, query.page, query.size, rt.list_counts
        )
        tz = rt.settings.tz
        places = queue_positions(session, page.items)
        content = [model_summary(model, tz, places, session) for model in page.items]
        if query.with_summary:
            summaries = metric_summaries(session, [model.id for model in page.items])
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
        found = find_model_detail(session, key)
        if found is None:
            raise model_not_found(key)
        data = model_detail(found.model, found.jobs, rt.settings.tz, session)
        summary = metric_summary(session, found.model) if found.has_metrics else {}
        data["metricSummary"] = cast(responses.MetricSummary, summary)
        return ok(data)
