"""The bench's baseline: the least a Flask app can do to answer the list's first page.

`create_app()` reads the page the real API answered (`BENCH_BASELINE_PAGE`, a JSON file the
bench writes from `GET /api/models/list?status=&page=0&size=20`) once, and serves it with
`jsonify` from that constant Python object on every request: no database, no validation, no
hooks. The bench runs it under the same gunicorn configuration as the API and measures both
in the same run, so `ratio` in its table is what the API's own work costs (issue 13, item 7).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify


def create_app() -> Flask:
    page: Any = json.loads(Path(os.environ["BENCH_BASELINE_PAGE"]).read_text())
    app = Flask(__name__, static_folder=None)
    # The API's JSON settings (app/factory.py), so the bytes on the wire are the same.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    @app.get("/api/models/list")
    def first_page() -> Response:
        return jsonify(page)

    return app
