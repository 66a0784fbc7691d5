"""GET /api/health: is the database reachable, is the broker reachable."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from app.runtime import runtime
from app.services.publisher import CeleryPublisher

bp = Blueprint("health", __name__, url_prefix="/api")


@bp.get("/health")
def health() -> tuple[Response, int]:
    rt = runtime()
    checks: dict[str, dict[str, object]] = {}
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": rt.engine.dialect.name}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": str(exc)[:300]}
    broker_ok = isinstance(rt.publisher, CeleryPublisher) and rt.publisher.ping()
    checks["broker"] = {"ok": broker_ok}
    healthy = all(check["ok"] for check in checks.values())
    body = {"success": healthy, "data": {"status": "ok" if healthy else "degraded", **checks}}
    return jsonify(body), 200 if healthy else 503
