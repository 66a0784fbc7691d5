"""Parsing path and query values; bad input is a 400 that names what was wrong."""

from __future__ import annotations

import json
import re
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

#: Deeper JSON is refused before it is parsed: no request shape needs it, and a parser's
#: recursion must never be what fails.
MAX_JSON_DEPTH = 32
# A JSON string literal (escapes included) or a bracket: what the depth count looks at.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def model_not_found(model_uuid: uuid.UUID) -> ApiError:
    return ApiError(404, "MODEL_NOT_FOUND", f"No model with uuid {model_uuid}.")


def model_or_404(session: Session, model_uuid: uuid.UUID) -> Model:
    model = find_model(session, model_uuid)
    if model is None:
        raise model_not_found(model_uuid)
    return model


def is_ascii_digits(value: str) -> bool:
    """'12' yes; '²' and '٣' no (str.isdigit says yes to both, and int('²') raises)."""
    return value.isascii() and value.isdigit()


def parse_uuid(value: str) -> uuid.UUID:
    try:
        if not value.isascii():  # uuid.UUID reads '٣' as a hex digit
            raise ValueError
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(
            400, "INVALID_UUID", f"{quote(value)} is not a valid model uuid."
        ) from None


def parse_epoch(value: str) -> int:
    if not is_ascii_digits(value) or int(value) < 1:
        raise ApiError(
            400, "INVALID_EPOCH", f"epoch must be a positive integer, got {quote(value)}."
        )
    return int(value)


def quote(value: str, limit: int = 40) -> str:
    """A caller's value inside a message: escaped (no NUL or lone surrogate gets through to a
    log or a JSON encoder) and short."""
    shown = ascii(value[:limit])
    return shown if len(value) <= limit else f"{shown}…"


def parse_json_body(schema: type[SchemaT]) -> SchemaT:
    """Validate in JSON mode: strict types ("3" is not 3), enums given by their value.

    Before the schema sees it the body must be a JSON object no deeper than MAX_JSON_DEPTH
    whose every string (keys too, at any depth) is valid UTF-8 without NUL: PostgreSQL
    stores neither, so such input is a 400 naming the field, never a failed write.
    """
    raw = request.get_data()  # over MAX_CONTENT_LENGTH: 413
    # Invalid UTF-8 bytes become lone surrogates here, so they are found like "\ud800" is.
    text = raw.decode("utf-8", errors="surrogateescape")
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ApiError(
            400, "INVALID_JSON", f"The request body nests deeper than {MAX_JSON_DEPTH} levels."
        )
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_JSON", "The request body must be a JSON object.")
    bad = find_unstorable_string(body)
    if bad is not None:
        raise ApiError(400, "INVALID_FIELD", bad)
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(400, "INVALID_FIELD", describe_validation_error(exc)) from None


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest, counted without parsing it (brackets
    inside strings do not count)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _string_problem(value: str) -> str | None:
    if "\x00" in value:
        return "a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid UTF-8 (or a lone surrogate escape)"
    return None


def find_unstorable_string(body: dict[str, Any]) -> str | None:
    """`params.a.b: contains a NUL character` for a string of the body (a key or a
    value, at any depth) that cannot be stored; None when there is none."""
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            problem = _string_problem(value)
            if problem:
                return f"{where}: contains {problem}."
        elif isinstance(value, dict):
            for key, child in value.items():
                problem = _string_problem(key)
                if problem:
                    return f"{where or 'body'}: the key {quote(key)} contains {problem}."
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(value))
    return None


def parse_query(schema: type[SchemaT]) -> SchemaT:
    query = request.args.to_dict()
    bad = find_unstorable_string(query)  # a NUL in a filter would fail in PostgreSQL
    if bad is not None:
        raise ApiError(400, "INVALID_QUERY", bad)
    try:
        return schema.model_validate(query)
    except ValidationError as exc:
        raise ApiError(400, "INVALID_QUERY", describe_validation_error(exc)) from None
