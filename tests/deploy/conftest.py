"""Deployment tests: the compose file, the images, scale-out (add a node, drain a node) and
observability. Worker processes come from tests/workers (imported, not copied)."""

from __future__ import annotations

from tests.workers.conftest import trainer_image, workers  # noqa: F401
