"""The contract between the API and the workers: task names and queue names.

Tasks are sent by name, so the API never imports worker code.
"""

from __future__ import annotations

from typing import Any

LAUNCH_JOB = "trainyard.launch_job"
STOP_JOB = "trainyard.stop_job"
SYNC_JOB = "trainyard.sync_job"
COMPLETE_JOB = "trainyard.complete_job"  # judge the end, ingest metrics, one transaction
SWEEP = "trainyard.sweep"
DELIVER_WEBHOOK = "trainyard.deliver_webhook"  # one try of one webhook delivery

QUEUE_CONTROL = "control"
QUEUE_LAUNCH_CPU = "launch.cpu"
QUEUE_LAUNCH_GPU = "launch.gpu"
QUEUE_METRICS = "metrics"
QUEUE_WEBHOOKS = "webhooks"  # every node serves it; each try is bounded by WEBHOOK_TIMEOUT_S


def node_queue(node: str) -> str:
    """Work that must reach the node owning a container (stop, status sync)."""
    return f"node.{node}"


def launch_queue(resources: dict[str, Any]) -> str:
    return QUEUE_LAUNCH_GPU if int(resources.get("gpus", 0) or 0) > 0 else QUEUE_LAUNCH_CPU
