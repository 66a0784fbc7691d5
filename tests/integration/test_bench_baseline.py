"""The bench's baseline app (bench/baseline_app.py) answers the page it was given on each of
its routes, after its round trip where it has one: the bench's `floor` and `floor-detail` rows
measure what they say only if their statements run on the real database and succeed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bench.api_bench import libpq_url, seed
from bench.baseline_app import create_app
from tests.conftest import TEST_DATABASE_URL


def test_every_route_answers_the_page_after_its_statement(
    db: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuids = seed(TEST_DATABASE_URL, 6, 7)
    page = {"content": [{"modelNo": "G1", "memo": "학습 🚀"}], "totalElements": 1, "totalPages": 1}
    page_file = tmp_path / "page.json"
    page_file.write_text(json.dumps(page))
    monkeypatch.setenv("BENCH_BASELINE_PAGE", str(page_file))
    monkeypatch.setenv("BENCH_FLOOR_DATABASE", libpq_url(TEST_DATABASE_URL))
    client = create_app().test_client()

    models = uuids["idle"] + uuids["live"]
    paths = ["/api/models/list", "/floor", *(f"/floor/{u}" for u in models)]
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.data[:300])
        assert answer.get_json() == page, path
    assert len(models) == 6
