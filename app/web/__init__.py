"""The dashboard (SPEC §8): the page at `/` and the nodes page at `/nodes`, hand-written HTML,
CSS and JavaScript that talk to the JSON API. No third-party front-end code, no build step."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, current_app, render_template

from app import appstate

bp = Blueprint(
    "web",
    __name__,
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)

_STATIC = Path(__file__).parent / "static"

#: Everything the page loads comes from this server; no inline script, no third party.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'self'; form-action 'self'"
)


def flower_url() -> str:
    """FLOWER_URL from the environment (or the app config); empty means "same host, :5555",
    which the page works out from its own address."""
    configured = current_app.config.get("FLOWER_URL") or os.environ.get("FLOWER_URL", "")
    return configured.strip()


@cache
def _asset_version(name: str, mtime_ns: int) -> str:
    return hashlib.sha256((_STATIC / name).read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    """`/static/<name>?v=<content hash>`, so a new release is never served from a stale cache."""
    path = _STATIC / name
    return f"/static/{name}?v={_asset_version(name, path.stat().st_mtime_ns)}"


def _page(template: str, **context: str) -> Response:
    """A page rendered with its versioned assets, never cached, under the page's CSP."""
    html = render_template(template, asset_url=asset_url, **context)
    response = current_app.response_class(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.get("/")
def dashboard() -> Response:
    # API times are written in DISPLAY_TZ; the page names that zone and keeps its clock in it
    display_tz = appstate.state().settings.display_tz
    return _page("index.html", flower_url=flower_url(), display_tz=display_tz)


@bp.get("/nodes")
def nodes_page() -> Response:
    """The nodes page: nodes, their GPUs and jobs, drain (reads GET /api/nodes)."""
    return _page("nodes.html")
