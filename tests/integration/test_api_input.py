"""Hostile API input against real PostgreSQL: every bad value is a 400 that names what was wrong,
never a 500, and nothing of it reaches the database (issue 10, items 3, 5 and 6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Model
from tests.integration.helpers import create_model

GOOD: dict[str, Any] = {
    "modelNo": "G1",
    "modelVer": "v1",
    "memo": "memo",
    "params": {"total_epoch": 4, "val_interval": 2, "extra": {"deep": ["a", "b"]}},
}


def _body(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(GOOD))
    body.update(changes)
    return body


def _post_raw(client: FlaskClient, raw: bytes) -> Any:
    return client.post("/api/models", data=raw, content_type="application/json")


def _models(db: sessionmaker[Session]) -> int:
    with db() as session:
        return int(session.scalar(select(func.count()).select_from(Model)) or 0)


def _refused(response: Any, code: str, *named: str) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    for name in named:
        assert name in error["message"], (name, error["message"])
    return str(error["message"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(modelVer="v1\u0000"), "modelVer:"),
        (_body(memo="a\u0000b"), "memo:"),
        (_body(image="trainer\u0000:latest"), "image:"),
        (_body(dataset="demo\u0000"), "dataset:"),
        (_body(params={**GOOD["params"], "note": "x\u0000"}), "params.note:"),
        (
            _body(params={**GOOD["params"], "extra": {"deep": ["a", "\u0000"]}}),
            "params.extra.deep[1]:",
        ),
        (_body(params={**GOOD["params"], "extra": {"k\u0000ey": 1}}), "params.extra: the key"),
    ],
)
def test_nul_in_any_string_is_a_400_naming_the_field(
    client: FlaskClient, db: sessionmaker[Session], body: dict[str, Any], field: str
) -> None:
    message = _refused(client.post("/api/models", json=body), "INVALID_FIELD", field, "NUL")
    assert "\u0000" not in message
    assert _models(db) == 0


def _raw(fields: bytes) -> bytes:
    return b'{"modelNo": "G1", ' + fields + b"}"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # A lone surrogate escape: valid JSON, but no UTF-8 (PostgreSQL) can hold it.
        (_raw(b'"modelVer": "v1", "memo": "a\\ud800b", "params": {"total_epoch": 2}'), "memo:"),
        (_raw(b'"modelVer": "\\udfff", "params": {"total_epoch": 2}'), "modelVer:"),
        (_raw(b'"modelVer": "v1", "params": {"total_epoch": 2, "x": {"\\ud83d": 1}}'), "params.x"),
        # Bytes that are not UTF-8 at all.
        (_raw(b'"modelVer": "v1", "memo": "caf\xe9", "params": {"total_epoch": 2}'), "memo:"),
        (_raw(b'"modelVer": "\xff\xfe", "params": {"total_epoch": 2}'), "modelVer:"),
        (_raw(b'"modelVer": "v", "params": {"total_epoch": 2, "n": ["", "\xc3"]}'), "params.n[1]:"),
    ],
)
def test_invalid_utf8_and_lone_surrogates_are_a_400_naming_the_field(
    client: FlaskClient, db: sessionmaker[Session], raw: bytes, field: str
) -> None:
    _refused(_post_raw(client, raw), "INVALID_FIELD", field, "UTF-8")
    assert _models(db) == 0


def test_deeply_nested_json_is_a_400(client: FlaskClient, db: sessionmaker[Session]) -> None:
    def nested(depth: int) -> bytes:
        params = b'{"total_epoch": 2, "x": ' + b"[" * depth + b"]" * depth + b"}"
        return b'{"modelNo": "G1", "modelVer": "v1", "params": ' + params + b"}"

    # Brackets inside strings do not count; 32 levels in all are fine.
    fine = _post_raw(client, nested(30).replace(b'"v1"', b'"[[[[{{{{"'))
    assert fine.status_code == 201, fine.get_json()
    for depth in (31, 10_000, 100_000):  # 33 levels; and far past any parser's recursion
        _refused(_post_raw(client, nested(depth)), "INVALID_JSON", "deeper than 32")
    assert _models(db) == 1


def test_reserved_params_keys_are_the_platforms(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    for key, value in (("resume_from", 1), ("fresh_outputs", True), ("epoch", 2)):
        body = _body(params={**GOOD["params"], key: value})
        _refused(client.post("/api/models", json=body), "INVALID_FIELD", "params", key)
    body = _body(params={**GOOD["params"], "epoch": 1, "resume_from": 1})
    _refused(client.post("/api/models", json=body), "INVALID_FIELD", "epoch, resume_from")
    assert _models(db) == 0


def test_params_larger_than_the_cap_are_a_400(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    body = _body(params={**GOOD["params"], "blob": "x" * 70_000})  # under the 1 MiB body cap
    _refused(client.post("/api/models", json=body), "INVALID_FIELD", "params:", "65536")
    assert _models(db) == 0


@pytest.mark.parametrize("epoch", ["²", "٣", "3²", "1\u0000"])
def test_non_ascii_digits_in_the_epoch_path_are_a_400(client: FlaskClient, epoch: str) -> None:
    uid = create_model(client)["uuid"]
    _refused(client.post(f"/api/train/test/run/{epoch}/{uid}"), "INVALID_EPOCH", "epoch")


def test_non_ascii_digits_in_queries_and_uuids_are_a_400(client: FlaskClient) -> None:
    uid = create_model(client)["uuid"]
    for query in ("page=²", "page=٣", "size=²", "size=٣"):
        _refused(client.get(f"/api/models/list?{query}"), "INVALID_QUERY")
    _refused(client.get("/api/models/list?modelNo=G%00"), "INVALID_QUERY", "modelNo:", "NUL")
    for points in ("²", "٣٣"):
        response = client.get(f"/api/models/{uid}/metrics?maxPoints={points}")
        _refused(response, "INVALID_QUERY", "maxPoints")
    _refused(client.get(f"/api/models/{'٣' * 32}"), "INVALID_UUID")



def test_a_control_character_in_the_idempotency_key_is_a_400(client: FlaskClient) -> None:
    uid = create_model(client)["uuid"]
    for key in ("a\x00b", "a\x01b", "tab\there"):
        response = client.post(f"/api/train/run/{uid}", headers={"Idempotency-Key": key})
        _refused(response, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key")
    ok = client.post(f"/api/train/run/{uid}", headers={"Idempotency-Key": "click-é-1"})
    assert ok.status_code == 200, ok.get_json()
