"""GET /api/health: is the database reachable, is the broker reachable.

Open (no token), so it names what is down and never where it is: no host, port or user."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from app.api.unavailable import RETRY_AFTER_S, unavailable_dependency
from app.appstate import state
from app.services.publisher import CeleryPublisher

bp = Blueprint("health", __name__, url_prefix="/api")


@bp.get("/health")
def health() -> tuple[Response, int]:
    rt = state()
    checks: dict[str, dict[str, object]] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": rt.engine.dialect.name}
    except Exception as exc:
        current_app.logger.warning("health: database check failed: %s", exc)  # details: log only
        unreachable = unavailable_dependency(exc) == "database"
        error = "unreachable" if unreachable else f"check failed ({type(exc).__name__})"
        checks["database"] = {"ok": False, "error": error}
    if isinstance(rt.publisher, CeleryPublisher) and rt.publisher.ping():
        checks["broker"] = {"ok": True}
    else:
        checks["broker"] = {"ok": False, "error": "unreachable"}
    down = [name for name, check in checks.items() if not check["ok"]]
    data = {"status": "degraded" if down else "ok", **checks, "down": down}
    response = jsonify({"success": not down, "data": data})
    if down:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response, 503 if down else 200
