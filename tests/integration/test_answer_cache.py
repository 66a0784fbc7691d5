"""The list's answers kept until a model or a job changes (app/api/answer_cache.py), on real
PostgreSQL: kept while nothing they show changes, never served after a change (whoever made
it), and never kept when part of the answer may be older than the counter it would be kept
under."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.api.answer_cache import HEADER
from app.config import Settings
from app.db.migrate import upgrade
from app.factory import create_app
from tests.conftest import JsonWritesClient
from tests.integration.helpers import beat, create_model

LIST = "/api/models/list?status=&page=0&size=20"


def _listed(client: FlaskClient, path: str = LIST) -> tuple[str | None, list[dict[str, object]]]:
    answer = client.get(path)
    assert answer.status_code == 200, answer.get_json()
    return answer.headers.get(HEADER), answer.get_json()["data"]["content"]


def test_a_list_page_is_kept_until_a_model_or_job_changes(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    uid = create_model(client, memo="first")["uuid"]
    assert _listed(client)[0] == "miss"
    kept, content = _listed(client)
    assert kept == "hit", "nothing changed since: the same answer, not read again"
    assert content[0]["memo"] == "first"

    beat(db, "node-a", None)  # a heartbeat commits too, but changes no model or job
    beat(db, "node-a", None)
    assert _listed(client)[0] == "hit"

    # A write from elsewhere (a worker's connection, not this API): seen at the next read.
    with db() as session, session.begin():
        session.execute(
            text("update tb_model_master set memo = 'changed' where uuid = :u"), {"u": uid}
        )
    kept, content = _listed(client)
    assert (kept, content[0]["memo"]) == ("miss", "changed")

    # A command through the API: the client reads its own write at once.
    assert client.post(f"/api/train/run/{uid}").status_code == 200
    kept, content = _listed(client)
    assert kept == "miss"
    assert content[0]["statusCd"] == "IN_PROGRESS"
    assert _listed(client)[0] == "hit"


def test_nothing_is_kept_while_another_transaction_writes(
    client: FlaskClient, pg_engine: Engine
) -> None:
    """A transaction that changed a model takes its number as it commits: an answer read
    before it has finished committing must not be kept under the number before."""
    uid = create_model(client, memo="first")["uuid"]
    with pg_engine.connect() as writer:
        writer.execute(
            text("update tb_model_master set memo = 'pending' where uuid = :u"), {"u": uid}
        )
        assert [_listed(client)[0] for _ in range(2)] == ["miss", "miss"]
        writer.commit()
    kept, content = _listed(client)
    assert (kept, content[0]["memo"]) == ("miss", "pending")
    assert _listed(client)[0] == "hit"


def test_a_page_showing_metrics_is_not_kept(client: FlaskClient) -> None:
    create_model(client)
    for path in (f"{LIST}&withSummary=true", f"{LIST}&metric=best"):
        assert [_listed(client, path)[0] for _ in range(2)] == ["miss", "miss"], path


def test_a_page_whose_total_is_older_than_the_rows_is_not_kept(
    settings: Settings, db: sessionmaker[Session], broker: object
) -> None:
    app = create_app(settings.with_overrides(list_count_cache_s=60))
    app.test_client_class = JsonWritesClient
    client = app.test_client()
    try:
        create_model(client)
        assert _listed(client)[0] == "miss"
        create_model(client)
        page = client.get(LIST)
        assert page.get_json()["data"]["totalElements"] == 1  # reused for LIST_COUNT_CACHE_S
        assert len(page.get_json()["data"]["content"]) == 2
        # That total was counted before the last commit: keeping the page would show it
        # for as long as nothing commits, beyond LIST_COUNT_CACHE_S.
        assert page.headers[HEADER] == "miss"
        assert _listed(client)[0] == "miss"
    finally:
        app.extensions["trainyard"].dispose()


def test_nothing_is_kept_when_turned_off(
    settings: Settings, db: sessionmaker[Session], broker: object
) -> None:
    app = create_app(settings.with_overrides(answer_cache_entries=0))
    client = app.test_client()
    try:
        assert [_listed(client)[0] for _ in range(3)] == ["miss"] * 3
    finally:
        app.extensions["trainyard"].dispose()


def test_the_embedded_sqlite_keeps_nothing_and_reads_the_detail(
    settings: Settings, broker: object, tmp_path: Path
) -> None:
    """SQLite (`make run`) has no change counter: every list is read; the detail's statement
    runs through SQLAlchemy there (app/db/driver_rows.py)."""
    url = f"sqlite:///{tmp_path / 'trainyard.db'}"
    upgrade(url)
    app = create_app(settings.with_overrides(database_url=url))
    app.test_client_class = JsonWritesClient
    client = app.test_client()
    try:
        uid = create_model(client, memo="lite")["uuid"]
        assert [_listed(client)[0] for _ in range(2)] == ["miss", "miss"]
        detail = client.get(f"/api/models/{uid}").get_json()["data"]
        assert (detail["uuid"], detail["memo"], detail["jobs"]) == (uid, "lite", [])
    finally:
        app.extensions["trainyard"].dispose()
