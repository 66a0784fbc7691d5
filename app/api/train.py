"""/api/train: the commands of SPEC §4, status sync, and the dataset helpers."""

from __future__ import annotations

import uuid
from typing import cast

from flask import Blueprint, Response, jsonify, request

from app.api import responses
from app.api.envelope import ApiError, error_body, ok
from app.api.params import (
    model_not_found,
    model_or_404,
    parse_epoch,
    parse_json_body,
    parse_uuid,
)
from app.api.schemas import CommandOptions
from app.api.serialize import job_detail, model_summary
from app.appstate import state
from app.domain.transitions import Command, CommandRequest, Rejected
from app.services.commands import (
    Idempotency,
    IdempotencyKeyReused,
    ModelNotFound,
    Reply,
    execute_command,
)
from app.services.datasets import DatasetUnavailable, create_split_lists, split_counts
from app.services.status_writes import StatusWrite
from app.services.sync import request_sync

bp = Blueprint("train", __name__, url_prefix="/api/train")

# A rejected command conflicts with the model as it is now (its state, checkpoints, image or
# refused settings: `Reason`): always 409, the reason's code saying which.
_REJECTED = 409


def _render(write: StatusWrite) -> Reply:
    tz = state().settings.tz
    if isinstance(write.decision, Rejected):
        return Reply(_REJECTED, error_body(write.decision.reason.value, write.decision.message))
    job = job_detail(write.job, tz) if write.job is not None else None
    data: responses.CommandAnswer = {**model_summary(write.model, tz), "job": job}
    return Reply(200, {"success": True, "data": data})


def _idempotency() -> Idempotency | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        return None
    if len(key) > 200:
        raise ApiError(
            400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key is longer than 200 characters."
        )
    if not key.isprintable():  # a NUL or a control character: PostgreSQL stores no NUL
        raise ApiError(
            400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key contains a control character."
        )
    return Idempotency(key, f"{request.method} {request.path}")


def _command(model_uuid: uuid.UUID, command_request: CommandRequest) -> tuple[Response, int]:
    rt = state()
    try:
        reply = execute_command(
            rt.sessions, rt.publisher, model_uuid, command_request, _render, _idempotency()
        )
    except ModelNotFound:
        raise model_not_found(model_uuid) from None
    except IdempotencyKeyReused as exc:
        raise ApiError(400, "IDEMPOTENCY_KEY_REUSED", str(exc)) from None
    return jsonify(reply.body), reply.status


def _options() -> CommandOptions:
    """The command's optional JSON body; none (the usual case) means the defaults."""
    if not request.get_data():
        return CommandOptions()
    return parse_json_body(CommandOptions)


@bp.post("/run/<model_uuid>")
def run(model_uuid: str) -> tuple[Response, int]:
    key, options = parse_uuid(model_uuid), _options()
    return _command(key, CommandRequest(Command.RUN, priority=options.priority))


@bp.post("/restart/<model_uuid>")
def restart(model_uuid: str) -> tuple[Response, int]:
    key, options = parse_uuid(model_uuid), _options()
    return _command(key, CommandRequest(Command.RESTART, priority=options.priority))


@bp.post("/resume/<model_uuid>")
def resume(model_uuid: str) -> tuple[Response, int]:
    key, options = parse_uuid(model_uuid), _options()
    return _command(key, CommandRequest(Command.RESUME, priority=options.priority))


@bp.post("/cancel/<model_uuid>")
def cancel(model_uuid: str) -> tuple[Response, int]:
    return _command(parse_uuid(model_uuid), CommandRequest(Command.CANCEL))


@bp.post("/test/run/<epoch>/<model_uuid>")
def test_run(epoch: str, model_uuid: str) -> tuple[Response, int]:
    key = parse_uuid(model_uuid)
    wanted = parse_epoch(epoch)
    options = _options()
    _require_epoch_within_training(key, wanted)
    return _command(
        key, CommandRequest(Command.TEST_RUN, epoch=wanted, priority=options.priority)
    )


@bp.post("/test/cancel/<model_uuid>")
def test_cancel(model_uuid: str) -> tuple[Response, int]:
    return _command(parse_uuid(model_uuid), CommandRequest(Command.TEST_CANCEL))


def _require_epoch_within_training(model_uuid: uuid.UUID, epoch: int) -> None:
    """An epoch beyond total_epoch is bad input (400), not a state conflict."""
    with state().reads() as session:
        model = model_or_404(session, model_uuid)
        if epoch > model.total_epoch:
            raise ApiError(
                400,
                "INVALID_EPOCH",
                f"epoch {epoch} is beyond this model's total_epoch ({model.total_epoch}).",
            )


@bp.post("/status/<model_uuid>")
def status_sync(model_uuid: str) -> tuple[Response, int]:
    """Ask the owning node to reconcile the model's live job, then return the model."""
    key = parse_uuid(model_uuid)
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        sync = request_sync(session, rt.publisher, model)
        if sync.get("answered"):  # the node's reconcile may have changed it: read it again
            session.expire_all()
            model = model_or_404(session, key)
        report = cast(responses.SyncReport, sync)
        data: responses.SyncAnswer = {**model_summary(model, rt.settings.tz), "sync": report}
    return ok(data)


@bp.post("/create-tmp/<model_uuid>")
def create_tmp(model_uuid: str) -> tuple[Response, int]:
    key = parse_uuid(model_uuid)
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        try:
            return ok(create_split_lists(rt.settings, model))
        except DatasetUnavailable as exc:
            raise ApiError(409, exc.code, str(exc)) from None


@bp.get("/counts/<model_uuid>")
def counts(model_uuid: str) -> tuple[Response, int]:
    key = parse_uuid(model_uuid)
    rt = state()
    with rt.reads() as session:
        model = model_or_404(session, key)
        try:
            return ok(split_counts(rt.settings, model))
        except DatasetUnavailable as exc:
            raise ApiError(409, exc.code, str(exc)) from None
