"""gunicorn configuration of the API (`--config python:app.gunicorn_conf`, which `trainyard api`
passes). Hooks only: gunicorn takes every module-level name that is one of its settings, and
the options themselves come from the command line."""

from __future__ import annotations

from typing import Any


def on_starting(server: Any) -> None:
    """Runs in the master before any socket is bound: a refused bind binds nothing."""
    from app.config import load_settings
    from app.serve import check_bind

    check_bind(server.cfg.address, load_settings(), server.log)
