"""/api/webhooks/deliveries: the delivery history of status-change events (docs/webhooks.md).

Endpoints are shown by scheme and host only, and no secret is ever served: a webhook URL may be
one itself (a Slack webhook's path is its password).
"""

from __future__ import annotations

import uuid
from typing import Literal, cast
from zoneinfo import ZoneInfo

from flask import Blueprint, Response

from app.api import responses
from app.api.envelope import ApiError, ok
from app.api.params import model_or_404, parse_query, parse_uuid, quote
from app.api.schemas import DeliveryQuery
from app.appstate import state
from app.db.models import WebhookDelivery, WebhookEvent
from app.domain.timefmt import format_time
from app.domain.webhooks import redacted
from app.services.webhooks import list_deliveries

bp = Blueprint("webhooks", __name__, url_prefix="/api/webhooks")


def delivery_info(
    delivery: WebhookDelivery, event: WebhookEvent, model_uuid: str, tz: ZoneInfo
) -> responses.WebhookDeliveryInfo:
    return {
        "id": delivery.id,
        "eventId": str(event.event_id),
        "modelUuid": model_uuid,
        "jobId": event.job_id,
        "target": cast(Literal["deployment", "model"], delivery.target),
        "endpoint": redacted(delivery.url),
        "format": cast(Literal["json", "slack"], delivery.format),
        "status": cast(Literal["PENDING", "DELIVERED", "DEAD"], delivery.status),
        "attempts": delivery.attempts,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "createdDttm": format_time(delivery.created_dttm, tz),
        "lastAttemptDttm": format_time(delivery.last_try_dttm, tz),
        "nextAttemptDttm": format_time(delivery.next_attempt_dttm, tz),
        "deliveredDttm": format_time(delivery.delivered_dttm, tz),
        "deadDttm": format_time(delivery.dead_dttm, tz),
        "event": cast(responses.WebhookEventBody, event.payload),
    }


def _model_uuid(value: str) -> uuid.UUID:
    try:
        return parse_uuid(value)
    except ApiError:
        raise ApiError(
            400, "INVALID_QUERY", f"modelUuid: {quote(value)} is not a model uuid."
        ) from None


@bp.get("/deliveries")
def deliveries() -> tuple[Response, int]:
    query = parse_query(DeliveryQuery)
    rt = state()
    with rt.reads() as session:
        model_id = None
        if query.model_uuid:
            model_id = model_or_404(session, _model_uuid(query.model_uuid)).id
        page = list_deliveries(session, model_id, query.status or None, query.page, query.size)
        tz = rt.settings.tz
        answer: responses.WebhookDeliveryPage = {
            "content": [delivery_info(d, e, str(u), tz) for d, e, u in page.items],
            "totalElements": page.total,
            "totalPages": -(-page.total // query.size),
        }
    return ok(answer)
