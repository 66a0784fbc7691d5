"""Serving the API: gunicorn, behind the one check every start path goes through.

`trainyard api [gunicorn options]` runs gunicorn with app/gunicorn_conf.py, whose on_starting
hook calls `check_bind` before any socket is opened. docker-compose.yml, the app image's CMD
and `trainyard devstack` all start the API that way (and the image sets GUNICORN_CMD_ARGS, so
a plain `gunicorn` there loads the hook too).

The rule: an API that listens on anything but loopback (or a Unix socket) needs API_TOKEN.
Without it, anyone who reaches the port could create models and run containers on the nodes.
ALLOW_INSECURE_NO_TOKEN=1 accepts that explicitly, and the server says so on every start.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable
from typing import NoReturn, Protocol

from app.config import Settings

GUNICORN_CONFIG = "python:app.gunicorn_conf"
APP_TARGET = "app.factory:create_app()"

# What gunicorn's cfg.address holds: (host, port), a Unix socket path, or an inherited fd.
Address = tuple[str, int] | str | int


class WarningLog(Protocol):  # logging.Logger, or gunicorn's own logger
    def warning(self, msg: str, *args: object) -> None: ...


class InsecureBind(RuntimeError):
    """gunicorn prints a RuntimeError from on_starting as `Error: …` and exits 1."""


def is_loopback(address: Address) -> bool:
    if isinstance(address, str):  # a Unix socket: only this host's processes reach it
        return True
    if isinstance(address, int):  # fd://N: whatever it is bound to is unknown, so public
        return False
    host = address[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # any other host name may resolve to a public address
        return False


def describe(address: Address) -> str:
    if isinstance(address, tuple):
        host, port = address
        return f"[{host}]:{port}" if ":" in host else f"{host or '0.0.0.0'}:{port}"
    return f"unix:{address}" if isinstance(address, str) else f"fd://{address}"


def check_bind(addresses: Iterable[Address], settings: Settings, log: WarningLog) -> None:
    """Raise InsecureBind when the API would listen publicly without a token (unless opted
    out, which is logged as a warning)."""
    public = [describe(a) for a in addresses if not is_loopback(a)]
    if not public or settings.api_token:
        return
    where = ", ".join(public)
    if settings.allow_insecure_no_token:
        log.warning(
            "INSECURE: ALLOW_INSECURE_NO_TOKEN=1 — the API listens on %s without API_TOKEN: "
            "anyone who reaches it can create models and start, stop or restart training "
            "containers. Set API_TOKEN.",
            where,
        )
        return
    raise InsecureBind(
        f"refusing to serve the API on {where} without API_TOKEN: anyone who reaches it could "
        "create models and run containers on the nodes. Set API_TOKEN, or bind 127.0.0.1, "
        "or set ALLOW_INSECURE_NO_TOKEN=1 to accept the risk."
    )


def gunicorn_argv(options: list[str]) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG, *options, APP_TARGET]


def serve(options: list[str]) -> NoReturn:
    """Become gunicorn (same process id: signals from Docker or devstack reach it)."""
    argv = gunicorn_argv(options)
    os.execv(argv[0], argv)
