"""The bench's baseline: the least a Flask app can do to answer the list's first page.

`create_app()` reads the page the real API answered (`BENCH_BASELINE_PAGE`, a JSON file the
bench writes from `GET /api/models/list?status=&page=0&size=20`) once, and serves it with
`jsonify` from that constant Python object on every request: no database, no validation, no
hooks. The bench runs it under the same gunicorn configuration as the API and measures both
in the same run, so `ratio` in its table is what the API's own work costs (issue 13, item 7).

`/floor` answers the same page after one round trip to PostgreSQL (`SELECT 1` on a
connection each worker keeps, in autocommit, to `BENCH_FLOOR_DATABASE`): the least any
endpoint that reads the database pays, so the `floor` row shows how much of a ratio is that
round trip alone.

`/floor/<uuid>` answers it after the detail's own statement instead (`queries.DETAIL_STATEMENT`
on that connection, read as the API reads it: `driver_rows.rows_on`, its JSON columns by the
engines' `json_loads`; the rows dropped): what the detail pays for its one round trip before
any of its own Python work (no Session, no pool, no formatting), so the `floor-detail` row is
the most a detail could reach on this machine.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, Response, jsonify
from psycopg.types.json import set_json_loads
from sqlalchemy.dialects import postgresql

from app.db.driver_rows import rows_on
from app.db.session import json_loads
from app.services.queries import DETAIL_STATEMENT


def create_app() -> Flask:
    page: Any = json.loads(Path(os.environ["BENCH_BASELINE_PAGE"]).read_text())
    app = Flask(__name__, static_folder=None)
    # The API's JSON settings (app/factory.py), so the bytes on the wire are the same.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    @app.get("/api/models/list")
    def first_page() -> Response:
        return jsonify(page)

    floor_database = os.environ.get("BENCH_FLOOR_DATABASE", "")  # a libpq URL
    local = threading.local()

    def connection() -> psycopg.Connection[Any]:
        found: psycopg.Connection[Any] | None = getattr(local, "connection", None)
        if found is None:
            found = local.connection = psycopg.connect(floor_database, autocommit=True)
            set_json_loads(json_loads, found)  # as the API's engines have theirs read
        return found

    @app.get("/floor")
    def after_one_round_trip() -> Response:
        connection().execute("SELECT 1").fetchone()
        return jsonify(page)

    dialect = postgresql.dialect()  # one, so the statement is compiled once

    @app.get("/floor/<model_uuid>")
    def after_the_detail_statement(model_uuid: str) -> Response:
        rows_on(connection(), DETAIL_STATEMENT, {"uuid": uuid.UUID(model_uuid)}, dialect)
        return jsonify(page)

    return app
