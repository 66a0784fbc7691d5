"""GET /metrics: Prometheus text format (what is measured: app/observability.py, and the
per-node gauges of NodeCollector below).

Outside /api on purpose: it is for the scraper, not a client of the JSON API, and answers in
Prometheus' format, not the envelope. Reads, so it needs no token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.appstate import state
from app.observability import TrainyardCollector
from app.services.nodes import list_nodes

bp = Blueprint("prom", __name__)

_REGISTRY_KEY = "trainyard.prometheus"


class NodeCollector:
    """Per node, read at scrape time from tb_node, tb_gpu_lease and the jobs it holds:

    trainyard_node_up{node}                        1 alive, 0 lost (NODE_LOST_AFTER_S)
    trainyard_node_heartbeat_age_seconds{node}     seconds since its last heartbeat
    trainyard_node_gpus{node,state}                GPUs leased / free
    trainyard_node_containers_running{node}        containers started and not seen ended
    trainyard_node_jobs_held{node}                 jobs claimed, container not yet removed
    trainyard_node_draining{node}                  1 while drained

    A node that never beat has no series; a database outage shows in trainyard_up.
    """

    def __init__(self, engine: Engine, lost_after_s: float) -> None:
        self.engine = engine
        self.lost_after_s = lost_after_s

    def collect(self) -> Iterable[Any]:
        try:
            with Session(self.engine) as session:
                views = list_nodes(session, self.lost_after_s)
        except Exception as exc:  # trainyard_up{component="database"} says so
            logging.getLogger(__name__).warning("metrics: nodes unavailable: %s", exc)
            return
        up = GaugeMetricFamily("trainyard_node_up", "1 alive, 0 lost", labels=["node"])
        age = GaugeMetricFamily(
            "trainyard_node_heartbeat_age_seconds",
            "Seconds since the node's last heartbeat",
            labels=["node"],
        )
        gpus = GaugeMetricFamily(
            "trainyard_node_gpus", "The node's GPUs, leased or free", labels=["node", "state"]
        )
        running = GaugeMetricFamily(
            "trainyard_node_containers_running",
            "Containers started on the node and not seen ended",
            labels=["node"],
        )
        held = GaugeMetricFamily(
            "trainyard_node_jobs_held",
            "Jobs the node holds (claimed, container not yet removed)",
            labels=["node"],
        )
        draining = GaugeMetricFamily(
            "trainyard_node_draining", "1 while the node is drained", labels=["node"]
        )
        for view in views:
            up.add_metric([view.name], 1 if view.alive else 0)
            age.add_metric([view.name], view.heartbeat_age_s)
            gpus.add_metric([view.name, "leased"], view.gpus_leased)
            gpus.add_metric([view.name, "free"], len(view.gpus) - view.gpus_leased)
            running.add_metric([view.name], view.containers_running)
            held.add_metric([view.name], len(view.jobs))
            draining.add_metric([view.name], 1 if view.draining else 0)
        yield from (up, age, gpus, running, held, draining)


def _registry() -> CollectorRegistry:
    """One registry per app (never the global one: tests build many apps in one process)."""
    registry = current_app.extensions.get(_REGISTRY_KEY)
    if registry is None:
        rt = state()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TrainyardCollector(rt.engine, rt.settings.broker_url))
        registry.register(NodeCollector(rt.engine, rt.settings.node_lost_after_s))
        current_app.extensions[_REGISTRY_KEY] = registry
    return registry


@bp.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)
