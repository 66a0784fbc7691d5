"""Webhooks (docs/webhooks.md): an event per status change, delivered at least once.

- `record_status_change`: called by the one status-write path inside its transaction; writes
  the event, a delivery per endpoint and an outbox row per delivery (commit, then publish:
  the status write never touches the network).
- `deliver`: the workers' task. Claims a due delivery, POSTs it (bounded by
  WEBHOOK_TIMEOUT_S, outside any transaction), records the answer: DELIVERED, a retry after
  an exponential backoff, or DEAD after WEBHOOK_MAX_ATTEMPTS (the dead-letter record).
- `publish_due`: the sweep's step that hands due retries (and lost messages) to the broker.
- `list_deliveries`: the history the API serves.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app import messaging
from app.config import WebhookSettings, load_webhook_settings
from app.db.models import Job, Model, WebhookDelivery, WebhookEvent
from app.db.session import transaction
from app.domain import webhooks as events
from app.domain.timefmt import utcnow
from app.domain.transitions import Action, CommandRequest, RetryRequest
from app.services.outbox import enqueue
from app.services.publisher import Publisher

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD = "PENDING", "DELIVERED", "DEAD"
STATUSES = (PENDING, DELIVERED, DEAD)
#: A try in flight holds its delivery this long past its timeout; a worker that died mid-try
#: leaves it due again after that.
IN_FLIGHT_MARGIN_S = 30.0
#: A due delivery whose message was handed to the broker this long ago without a try is
#: handed again (the message was lost, or its worker died before claiming it).
REPUBLISH_AFTER_S = 60.0
ERROR_LIMIT = 500
PUT_OFF_S = 1.0  # a delivery met with every sender busy is due again after this


# --- recording, inside the status write ------------------------------------------------------


@dataclass(frozen=True)
class StatesBefore:
    """The model's states (and the action's job's) as the status write found them."""

    status: str
    step1: str
    step2: str
    job_status: str | None


def states_before(model: Model, job: Job | None) -> StatesBefore:
    return StatesBefore(
        model.status_cd, model.step1_state, model.step2_state, job.status_cd if job else None
    )


def _transition(job: Job, old: str | None) -> events.JobTransition:
    return events.JobTransition(
        job_id=job.id,
        job_type=job.job_type,
        attempt=job.attempt,
        old=old,
        new=job.status_cd,
        exit_code=job.exit_code,
        node=job.node,
    )


def status_change(
    model: Model,
    before: StatesBefore,
    action: Action,
    changed_job: Job | None,
    created_job: Job | None,
) -> events.StatusChange:
    """What one accepted write changed: `changed_job` the job it ended or started (its
    status before is `before.job_status`), `created_job` the job it queued."""
    moved = [_transition(changed_job, before.job_status)] if changed_job is not None else []
    if created_job is not None:
        moved.append(_transition(created_job, None))
    if isinstance(action, CommandRequest):
        cause = ("command", action.command.value)
    elif isinstance(action, RetryRequest):
        cause = ("retry", action.sub_status)
    else:
        cause = ("observation", action.event.value)
    return events.StatusChange(
        model_uuid=str(model.uuid),
        model_no=model.model_no,
        model_ver=model.model_ver,
        status=(before.status, model.status_cd),
        step1=(before.step1, model.step1_state),
        step2=(before.step2, model.step2_state),
        job=moved[0] if moved else None,
        new_job=moved[1] if len(moved) > 1 else None,
        cause_kind=cause[0],
        cause_name=cause[1],
        last_error=model.last_error,
    )


@dataclass(frozen=True)
class Endpoint:
    target: str  # "deployment" or "model"
    url: str
    format: str


def endpoints(model: Model, settings: WebhookSettings) -> list[Endpoint]:
    found = [Endpoint("deployment", url, settings.format) for url in settings.urls]
    if model.webhook_url:
        found.append(Endpoint("model", model.webhook_url, model.webhook_format or "json"))
    return found


def record_status_change(
    session: Session,
    model: Model,
    change: events.StatusChange,
    settings: WebhookSettings | None = None,
) -> list[int]:
    """The event and its deliveries, in the caller's transaction; returns the outbox ids to
    publish after the commit. Nothing at all without an endpoint or without a change."""
    settings = settings or load_webhook_settings()
    targets = endpoints(model, settings)
    if not targets or not change.changed:
        return []
    now = utcnow()
    event_uuid = uuid.uuid4()
    job = change.job
    event = WebhookEvent(
        event_id=event_uuid, model_id=model.id, job_id=job.job_id if job else None, payload={}
    )
    session.add(event)
    session.flush()
    # The event's row id is its sequence: ids only grow, so it orders a model's events even
    # when the API and the workers' clocks disagree.
    event.payload = events.build_event(
        change, str(event_uuid), event.id, now, settings.public_url
    )
    outbox_ids = []
    for target in targets:
        delivery = WebhookDelivery(
            event_id=event.id,
            model_id=model.id,
            target=target.target,
            url=target.url,
            format=target.format,
            status=PENDING,
            attempts=0,
            enqueued_dttm=now,  # the outbox row below is its message
        )
        session.add(delivery)
        session.flush()
        payload = {"delivery_id": delivery.id}
        outbox_ids.append(
            enqueue(session, messaging.DELIVER_WEBHOOK, messaging.QUEUE_WEBHOOKS, payload).id
        )
    return outbox_ids


# --- delivering, on a worker -----------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    event_id: str
    url: str
    format: str
    payload: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None


class SenderSlots:
    """How many of a worker process's task threads may be sending webhooks at once
    (WEBHOOK_SENDERS): the others stay free for launches, stops and completions, however
    slow or hanging a receiver is."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._slots = threading.BoundedSemaphore(count)

    def take(self) -> bool:
        return self._slots.acquire(blocking=False)

    def give_back(self) -> None:
        self._slots.release()


_slots: SenderSlots | None = None
_slots_lock = threading.Lock()


def sender_slots(count: int) -> SenderSlots:
    """This process's slots (made on first use, with the first `count` asked for)."""
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = SenderSlots(count)
        return _slots


def deliver(
    factory: sessionmaker[Session],
    settings: WebhookSettings,
    delivery_id: int,
    slots: SenderSlots | None = None,
) -> str:
    """One try of one delivery, when it is due; what happened, in words (the task's result).
    When every sender slot is busy the delivery is put off (no try counted) and the sweep
    hands it over again: a task thread never waits for a slot."""
    slots = slots or sender_slots(settings.senders)
    if not slots.take():
        _put_off(factory, delivery_id)
        return f"delivery {delivery_id}: put off, {slots.count} sender(s) busy"
    try:
        claimed = _claim(factory, settings, delivery_id)
        if claimed is None:
            return f"delivery {delivery_id}: not due (done, dead, in flight or waiting its backoff)"
        outcome = send(claimed, settings)
        return _record(factory, settings, claimed, outcome)
    finally:
        slots.give_back()


def _put_off(factory: sessionmaker[Session], delivery_id: int) -> None:
    now = utcnow()
    due = WebhookDelivery.next_attempt_dttm
    with transaction(factory) as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == PENDING,
                or_(due.is_(None), due <= now),
            )
            .values(next_attempt_dttm=now + timedelta(seconds=PUT_OFF_S), enqueued_dttm=None)
        )


def _claim(
    factory: sessionmaker[Session], settings: WebhookSettings, delivery_id: int
) -> Claimed | None:
    now = utcnow()
    with transaction(factory) as session:
        due = WebhookDelivery.next_attempt_dttm
        row = session.scalars(
            select(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == PENDING,
                or_(due.is_(None), due <= now),
            )
            .with_for_update()  # a second try of it waits here, then finds it not due
        ).one_or_none()
        if row is None:
            return None
        event = session.get(WebhookEvent, row.event_id)
        assert event is not None  # deliveries cascade with their event
        row.attempts += 1
        row.last_try_dttm = now
        lease = 4 * settings.timeout_s + IN_FLIGHT_MARGIN_S  # connect, write, read, pool
        row.next_attempt_dttm = now + timedelta(seconds=lease)
        return Claimed(
            row.id, str(event.event_id), row.url, row.format, dict(event.payload), row.attempts
        )


def send(claimed: Claimed, settings: WebhookSettings) -> Outcome:
    """POST the signed body; never raises. Redirects are not followed (a receiver moved is
    a failure to see, not a hop to take with the signature)."""
    body = events.render_body(claimed.format, claimed.payload)
    headers = events.headers(claimed.event_id, body, settings.secret, str(int(time.time())))
    headers["X-Trainyard-Delivery-Attempt"] = str(claimed.attempt)
    try:
        # Streamed and never read: only the status counts, and a receiver's body (of any
        # size) is not worth a byte of a worker's memory.
        with httpx.stream(
            "POST",
            claimed.url,
            content=body,
            headers=headers,
            timeout=settings.timeout_s,
            follow_redirects=False,
        ) as answer:
            status, reason = answer.status_code, answer.reason_phrase
    except Exception as exc:
        # The URL may carry a secret (a Slack webhook's path): never store it in the error.
        text = f"{type(exc).__name__}: {exc}".replace(claimed.url, events.redacted(claimed.url))
        return Outcome(False, None, text[:ERROR_LIMIT])
    if 200 <= status < 300:
        return Outcome(True, status, None)
    # The reason phrase is the receiver's text: kept short and printable.
    reason = "".join(c if c.isprintable() else "?" for c in reason[:100])
    return Outcome(False, status, f"HTTP {status} {reason}")


def _record(
    factory: sessionmaker[Session], settings: WebhookSettings, claimed: Claimed, outcome: Outcome
) -> str:
    now = utcnow()
    where = f"delivery {claimed.delivery_id} (event {claimed.event_id}, try {claimed.attempt})"
    with transaction(factory) as session:
        row = session.get(WebhookDelivery, claimed.delivery_id, with_for_update=True)
        if row is None or row.status != PENDING:
            return f"{where}: already {row.status if row else 'gone'}"
        row.last_status_code = outcome.status_code
        row.last_error = outcome.error
        if outcome.ok:
            row.status = DELIVERED
            row.delivered_dttm = now
            row.next_attempt_dttm = None
            return f"{where}: delivered ({outcome.status_code})"
        if row.attempts >= settings.retry.max_attempts:
            row.status = DEAD
            row.dead_dttm = now
            row.next_attempt_dttm = None
            log.error("webhook %s to %s dead after %s tries: %s", where,
                      events.redacted(row.url), row.attempts, outcome.error)  # fmt: skip
            return f"{where}: dead ({outcome.error})"
        row.next_attempt_dttm = now + settings.retry.backoff(row.attempts)
        row.enqueued_dttm = None  # the sweep hands the retry to the broker when it is due
        log.warning("webhook %s to %s failed: %s; next try after %s", where,
                    events.redacted(row.url), outcome.error, row.next_attempt_dttm)  # fmt: skip
        return f"{where}: failed ({outcome.error}), retrying"


# --- the sweep: due retries and lost messages -------------------------------------------------


def publish_due(factory: sessionmaker[Session], publisher: Publisher, limit: int = 200) -> int:
    """Hand the broker a message for each due delivery that has none in flight; how many.

    Each is marked handed over (and committed) before its message goes out, so the task never
    meets the mark's write; the marks of messages the broker refused are taken back."""
    now = utcnow()
    due = WebhookDelivery.next_attempt_dttm
    handed = WebhookDelivery.enqueued_dttm
    with transaction(factory) as session:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == PENDING,
                    or_(due.is_(None), due <= now),
                    or_(handed.is_(None), handed < now - timedelta(seconds=REPUBLISH_AFTER_S)),
                )
                .order_by(WebhookDelivery.id)
                .limit(limit)
            )
        )
        session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(ids)).values(enqueued_dttm=now)
        )
    for sent, delivery_id in enumerate(ids):
        try:
            publisher.publish(
                messaging.DELIVER_WEBHOOK,
                messaging.QUEUE_WEBHOOKS,
                {"delivery_id": delivery_id},
                f"webhook-{delivery_id}-{uuid.uuid4().hex[:8]}",
            )
        except Exception as exc:  # the broker is away: the next sweep tries again
            log.warning("webhook deliveries not re-published: %s", exc)
            with transaction(factory) as session:
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(ids[sent:]))
                    .values(enqueued_dttm=None)
                )
            return sent
    return len(ids)


# --- the history ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPage:
    items: list[tuple[WebhookDelivery, WebhookEvent, uuid.UUID]]  # with the model's uuid
    total: int


def list_deliveries(
    session: Session, model_id: int | None, status: str | None, page: int, size: int
) -> DeliveryPage:
    """Newest first."""
    filters = []
    if model_id is not None:
        filters.append(WebhookDelivery.model_id == model_id)
    if status:
        filters.append(WebhookDelivery.status == status)
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(*filters))
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent, Model.uuid)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(Model, Model.id == WebhookDelivery.model_id)
        .where(*filters)
        .order_by(WebhookDelivery.id.desc())
        .offset(page * size)
        .limit(size)
    ).all()
    return DeliveryPage([(d, e, u) for d, e, u in rows], total or 0)
