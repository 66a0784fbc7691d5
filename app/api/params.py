"""Parsing path and query values; bad input is a 400 that names what was wrong."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app.api.envelope import ApiError
from app.api.schemas import describe_validation_error
from app.db.models import Model
from app.services.queries import find_model

SchemaT = TypeVar("SchemaT", bound=BaseModel)


def model_not_found(model_uuid: uuid.UUID) -> ApiError:
    return ApiError(404, "MODEL_NOT_FOUND", f"No model with uuid {model_uuid}.")


def model_or_404(session: Session, model_uuid: uuid.UUID) -> Model:
    model = find_model(session, model_uuid)
    if model is None:
        raise model_not_found(model_uuid)
    return model


def parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(400, "INVALID_UUID", f"'{value}' is not a valid model uuid.") from None


def parse_epoch(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ApiError(400, "INVALID_EPOCH", f"epoch must be a positive integer, got '{value}'.")
    return int(value)


def parse_json_body(schema: type[SchemaT]) -> SchemaT:
    """Validate in JSON mode: strict types ("3" is not 3), enums given by their value."""
    body: Any = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_JSON", "The request body must be a JSON object.")
    try:
        return schema.model_validate_json(request.get_data())
    except ValidationError as exc:
        raise ApiError(400, "INVALID_FIELD", describe_validation_error(exc)) from None


def parse_query(schema: type[SchemaT]) -> SchemaT:
    try:
        return schema.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(400, "INVALID_QUERY", describe_validation_error(exc)) from None
