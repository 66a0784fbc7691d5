"""GET /metrics: Prometheus text format (what is measured: app/observability.py).

Outside /api on purpose: it is for the scraper, not a client of the JSON API, and answers in
Prometheus' format, not the envelope. Reads, so it needs no token.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.appstate import state
from app.observability import TrainyardCollector

bp = Blueprint("prom", __name__)

_REGISTRY_KEY = "trainyard.prometheus"


def _registry() -> CollectorRegistry:
    """One registry per app (never the global one: tests build many apps in one process)."""
    registry = current_app.extensions.get(_REGISTRY_KEY)
    if registry is None:
        rt = state()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TrainyardCollector(rt.engine, rt.settings.broker_url))
        current_app.extensions[_REGISTRY_KEY] = registry
    return registry


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
