"""The response envelope of SPEC §7 and the errors that map onto it."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from app.api.unavailable import RETRY_AFTER_S, unavailable_dependency


class ApiError(Exception):
    """An error the client can act on: it becomes `{"success": false, "error": …}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def ok(data: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify({"success": True, "data": data}), status


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(error_body(exc.code, exc.message)), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "HTTP_ERROR").upper().replace(" ", "_")
        return jsonify(error_body(code, exc.description or code)), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int] | Response:
        down = unavailable_dependency(exc)
        if down is not None:  # an outage, not a bug: say which, and when to try again
            app.logger.warning("%s unavailable: %s: %s", down, type(exc).__name__, exc)
            return unavailable_response(down)
        app.logger.exception("unhandled error")
        return jsonify(error_body("INTERNAL_ERROR", "The server failed; see its log.")), 500


_UNAVAILABLE_MESSAGES = {
    "database": "The database cannot be reached; try again shortly.",
    "broker": "The message broker cannot be reached; try again shortly.",
}


def unavailable_response(dependency: str) -> Response:
    """503 naming the dependency that is down (never its address), with `Retry-After`."""
    response = jsonify(
        error_body(f"{dependency.upper()}_UNAVAILABLE", _UNAVAILABLE_MESSAGES[dependency])
    )
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response
