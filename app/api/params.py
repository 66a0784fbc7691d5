"""Parsing path and query values; bad input is a 400 that names what was wrong."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from app.api.envelope import ApiError
from app.api.schemas import describe_validation_error

SchemaT = TypeVar("SchemaT", bound=BaseModel)


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
