"""What every write (POST, PUT, PATCH, DELETE) must carry before any view runs.

- `Content-Type: application/json`, else 415. A browser sends a cross-site request without
  asking the server first (no CORS preflight) only as a form or text/plain, or with no
  body at all; none of those is JSON, so no page on another site can run a command, token
  or not (docs/security.md).
- `Authorization: Bearer <API_TOKEN>` when API_TOKEN is set, else 401.
- A body no larger than API_MAX_BODY_BYTES, else 413 (MAX_CONTENT_LENGTH also stops a body
  of unknown length while it is read).
Reads stay open. Without API_TOKEN (and without ALLOW_INSECURE_NO_TOKEN) the API serves only
loopback, and then answers only requests addressed to a loopback name: a page whose own host
name an attacker re-points at 127.0.0.1 (DNS rebinding) is same-origin for the browser, so it
could send JSON, but its Host header still names the attacker's domain (403).
"""

from __future__ import annotations

import functools
import hmac
from urllib.parse import urlsplit

from flask import request

from app.api.envelope import ApiError
from app.api.params import quote
from app.appstate import state
from app.serve import is_loopback

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def guard_host() -> None:
    settings = state().settings
    if settings.api_token or settings.allow_insecure_no_token:
        return
    if not _names_loopback(request.host):
        raise ApiError(
            403,
            "HOST_NOT_ALLOWED",
            f"Without API_TOKEN the API answers only requests to localhost, 127.0.0.1 or [::1], "
            f"not to {quote(request.host)}. Set API_TOKEN to serve it under another name.",
        )


@functools.lru_cache(maxsize=64)
def _names_loopback(host: str) -> bool:
    """Whether a Host header names a loopback address; kept per header (a client sends the
    same one every time, and parsing it was a fortieth of a read's time)."""
    try:  # "name:port", "[v6]:port" or "name": the port does not matter here
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        name = ""
    return is_loopback((name, 0))


def guard_writes() -> None:
    if request.method not in _MUTATING:
        return
    settings = state().settings
    require_token(settings.api_token)
    require_json_content_type()
    require_body_within(settings.max_body_bytes)


def require_token(token: str | None) -> None:
    if not token:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise ApiError(
            401, "UNAUTHORIZED", "This request needs 'Authorization: Bearer <API_TOKEN>'."
        )


def require_json_content_type() -> None:
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Commands and writes need 'Content-Type: application/json' (even with no body).",
        )


def require_body_within(limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413,
            "REQUEST_ENTITY_TOO_LARGE",
            f"The request body is {request.content_length} bytes, more than the {limit} "
            "allowed (API_MAX_BODY_BYTES).",
        )
