"""/api/models: create, list, detail."""

from __future__ import annotations

from typing import cast

from flask import Blueprint, Response, request
from sqlalchemy.orm import Session

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import model_not_found, parse_json_body, parse_query, parse_uuid, quote
from app.api.schemas import CreateModel, ListQuery, RetryUpdate
from app.api.serialize import model_detail, model_summary
from app.appstate import state
from app.metrics import metric_summaries, metric_summary, ranking
from app.services import models
from app.services.queries import (
    TIME_ORDERS,
    ListOrder,
    find_model_detail,
    list_models,
    queue_positions,
)
from app.services.training_time import training_times

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
            retry_policy=body.retry.model_dump() if body.retry is not None else None,
            uses_dataset=body.uses_dataset,
            shm_size_mb=body.shm_size_mb,
            env=body.env,
            network=body.network,
            webhook_url=body.webhook_url,
            webhook_format=body.webhook_format,
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


@bp.post("/<model_uuid>/retry")
def set_retry(model_uuid: str) -> tuple[Response, int]:
    """Set or clear the retry policy; it applies from the next ending on (docs/retry.md)."""
    key = parse_uuid(model_uuid)
    body = parse_json_body(RetryUpdate)
    rt = state()
    policy = body.retry.model_dump() if body.retry is not None else None
    try:
        found = models.set_retry_policy(rt.sessions, key, policy)
    except models.InvalidField as exc:
        raise ApiError(400, "INVALID_FIELD", str(exc)) from None
    if not found:
        raise model_not_found(key)
    return detail(model_uuid)


@bp.get("/list")
def list_all() -> Response:
    rt = state()
    key = ("list", request.query_string)  # a query kept once was a valid one
    changes = rt.answers.changes()
    kept = rt.answers.get(key, changes)
    if kept is not None:
        return kept
    query = parse_query(ListQuery)
    with rt.reads() as session:
        # A page that shows metrics reads more than models and jobs: never kept.
        shows_metrics = query.with_summary or query.metric or query.sort.startswith("best:")
        keep_at = None if shows_metrics else rt.answers.keepable(session, changes)
        order, sort_metric = _list_order(session, query.sort, query.dir)
        page = list_models(
            session,
            query.status,
            query.model_no,
            query.page,
            query.size,
            rt.list_counts,
            search=query.q,
            order=order,
            metric=sort_metric,
            changes=keep_at,
        )
        tz = rt.settings.tz
        places = queue_positions(session, page.items)
        trainings = training_times(session, page.items)
        content = [model_summary(model, tz, places, session, trainings) for model in page.items]
        if query.with_summary:
            summaries = metric_summaries(session, [model.id for model in page.items])
            for item, model in zip(content, page.items, strict=True):
                item["metricSummary"] = cast(responses.MetricSummary, summaries[model.id])
        if query.metric:
            columns = _metric_column(session, query.metric, [model.id for model in page.items])
            for item, model in zip(content, page.items, strict=True):
                item["metricValue"] = columns[model.id]
        answer: responses.ModelPage = {
            "content": content,
            "totalElements": page.total,
            "totalPages": page.pages,
        }
        # A total counted before the last change is not what this page reads: not kept.
        keep_at = keep_at if page.exact_total else None
        return rt.answers.put(key, keep_at, session, ok(answer)[0])


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


def _metric_key(session: Session, text: str, param: str) -> ranking.MetricKey:
    """A `[split.]name[:min|max]` of a query parameter, its split resolved; 400 naming the
    parameter when it is not one, or names a metric no model has."""
    try:
        return ranking.resolve_split(session, ranking.MetricKey.parse(text))
    except (ValueError, LookupError) as exc:
        raise ApiError(400, "INVALID_QUERY", f"{param}: {quote(text, 160)}: {exc}.") from None


def _list_order(session: Session, sort: str, direction: str) -> tuple[ListOrder, str]:
    """The list's order for `sort` / `dir`, and the metric name a best: sort binds."""
    if sort.startswith("best:"):
        key = _metric_key(session, sort.removeprefix("best:"), "sort")
        best_first = key.mode == "max"  # descending puts the max first
        descending = best_first if direction == "" else direction == "desc"
        order = ListOrder(
            descending=descending, metric_split=key.split, metric_mode=key.mode
        )
        return order, key.name
    if sort not in TIME_ORDERS:
        raise ApiError(
            400,
            "INVALID_QUERY",
            f"sort: {quote(sort)} is not a sort key; use one of {', '.join(TIME_ORDERS)} "
            "or best:[train.|val.]<metric>[:min|:max] (e.g. best:val_loss).",
        )
    return ListOrder(column=sort, descending=direction != "asc"), ""


def _metric_column(
    session: Session, text: str, model_ids: list[int]
) -> dict[int, responses.MetricColumn]:
    """Each listed model's `metricValue` for `metric=` (`best`: each its own best metric)."""
    if text == "best":
        chosen = ranking.own_best(session, model_ids)
    else:
        key = _metric_key(session, text, "metric")
        found = ranking.best_of(session, key, model_ids)
        chosen = {model_id: (key, found.get(model_id)) for model_id in model_ids}
    out: dict[int, responses.MetricColumn] = {}
    for model_id in model_ids:
        key, best = chosen.get(model_id, (ranking.MetricKey("val_loss", "val", "min"), None))
        out[model_id] = {
            "name": key.name,
            "split": "train" if key.split == "train" else "val",
            "mode": "max" if key.mode == "max" else "min",
            "value": cast(responses.MetricValue, best.value) if best else None,
            "epoch": best.epoch if best else None,
        }
    return out
