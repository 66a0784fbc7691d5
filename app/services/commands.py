"""User commands (SPEC §4): lock, decide, write, commit — then publish."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import IdempotentResponse
from app.db.session import transaction
from app.domain.transitions import CommandRequest
from app.services.outbox import publish_pending
from app.services.publisher import Publisher
from app.services.status_writes import StatusWrite, apply, lock_model


class ModelNotFound(LookupError):
    pass


class IdempotencyKeyReused(ValueError):
    pass


@dataclass(frozen=True)
class Reply:
    """An HTTP answer (status and JSON body), as stored for an idempotent replay."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_line: str  # "POST /api/train/run/<uuid>": a key may not be reused for another


Render = Callable[[StatusWrite], Reply]


def execute_command(
    factory: sessionmaker[Session],
    publisher: Publisher,
    model_uuid: uuid.UUID,
    request: CommandRequest,
    render: Render,
    idempotency: Idempotency | None = None,
) -> Reply:
    """Run one command and return the reply `render` made of it.

    With an idempotency key, the first reply is stored in the command's own transaction and
    every repeat returns it unchanged. The model row lock serialises repeats of one key.
    """
    try:
        reply, write = _decide_and_record(factory, model_uuid, request, render, idempotency)
    except IntegrityError as exc:
        # The same key raced in for another model (a different row lock): it is a reuse.
        if idempotency is None:
            raise
        raise IdempotencyKeyReused(
            f"Idempotency-Key {idempotency.key!r} is already used for another request"
        ) from exc
    if write is not None:
        # Committed. A failed publish leaves the rows for the relay in the periodic sweep.
        publish_pending(factory, publisher, only_ids=write.outbox_ids)
    return reply


def _decide_and_record(
    factory: sessionmaker[Session],
    model_uuid: uuid.UUID,
    request: CommandRequest,
    render: Render,
    idempotency: Idempotency | None,
) -> tuple[Reply, StatusWrite | None]:
    with transaction(factory) as session:
        model = lock_model(session, model_uuid)
        if model is None:
            raise ModelNotFound(str(model_uuid))
        if idempotency is not None:
            stored = session.get(IdempotentResponse, idempotency.key)
            if stored is not None:
                if stored.request != idempotency.request_line:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {idempotency.key!r} was used for {stored.request}"
                    )
                return Reply(stored.status_code, stored.body), None
        write = apply(session, model, request)
        reply = render(write)
        if idempotency is not None:
            session.add(
                IdempotentResponse(
                    key=idempotency.key,
                    request=idempotency.request_line,
                    status_code=reply.status,
                    body=reply.body,
                )
            )
    return reply, write
