"""With API_TOKEN set, every mutating request needs `Authorization: Bearer <token>`."""

from __future__ import annotations

import hmac

from flask import request

from app.api.envelope import ApiError
from app.runtime import runtime

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def require_token_for_writes() -> None:
    token = runtime().settings.api_token
    if not token or request.method not in _MUTATING:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise ApiError(
            401, "UNAUTHORIZED", "This request needs 'Authorization: Bearer <API_TOKEN>'."
        )
