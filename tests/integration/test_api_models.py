"""/api/models against real PostgreSQL: create, detail, list with filters and pagination."""

from __future__ import annotations

import uuid

import pytest
from flask.testing import FlaskClient

from tests.integration.helpers import create_model


def test_create_returns_the_model_with_document_fields(client: FlaskClient) -> None:
    model = create_model(client)
    for field in (
        "id",
        "uuid",
        "modelVer",
        "statusCd",
        "statusName",
        "step1Status",
        "step1StatusName",
        "step2Status",
        "step2StatusName",
        "step1StrtDttm",
        "step1EndDttm",
        "step1Duration",
        "step2StrtDttm",
        "step2EndDttm",
        "step2Duration",
        "modelNo",
        "trainType",
        "trainTypeName",
        "currentAttemptId",
        "memo",
        "bestEpoch",
        "lastError",
        "step1MetricSaveYn",
        "step2MetricSaveYn",
        "progress",
    ):
        assert field in model, field
    assert (model["statusCd"], model["statusName"]) == ("READY", "대기")
    assert model["trainTypeName"] == "일반"
    assert model["memo"] == "테스트 학습"
    assert model["params"]["total_epoch"] == 4
    assert model["progress"] == {
        "epochsDone": 0,
        "totalEpoch": 4,
        "percent": 0.0,
        "checkpointEpoch": None,
    }


def test_detail_and_unknown_or_malformed_uuid(client: FlaskClient) -> None:
    model = create_model(client)
    detail = client.get(f"/api/models/{model['uuid']}").get_json()
    assert detail["success"] and detail["data"]["jobs"] == []
    missing = client.get(f"/api/models/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "MODEL_NOT_FOUND"
    bad = client.get("/api/models/not-a-uuid")
    assert bad.status_code == 400
    assert bad.get_json() == {
        "success": False,
        "error": {"code": "INVALID_UUID", "message": "'not-a-uuid' is not a valid model uuid."},
    }


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            {"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": "10"}},
            "params.total_epoch",
        ),
        ({"modelNo": "G7", "modelVer": "v1", "params": {"total_epoch": 10}}, "modelNo"),
        ({"modelNo": "G1", "modelVer": 3, "params": {"total_epoch": 10}}, "modelVer"),
        ({"modelNo": "G1", "modelVer": "v1"}, "params"),
        ({"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 0}}, "params.total_epoch"),
        (
            {"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 2, "val_interval": 3}},
            "val_interval",
        ),
        (
            {"modelNo": "G1", "modelVer": "v1", "trainType": "NOPE", "params": {"total_epoch": 1}},
            "trainType",
        ),
        (
            {
                "modelNo": "G1",
                "modelVer": "v1",
                "params": {"total_epoch": 1},
                "resources": {"gpus": -1},
            },
            "resources.gpus",
        ),
        (
            {"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 1}, "dataset": "../etc"},
            "dataset",
        ),
        (
            {
                "modelNo": "G1",
                "modelVer": "v1",
                "params": {"total_epoch": 1},
                "dataset": "nothing-here",
            },
            "dataset",
        ),
        ({"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 1}, "typo": 1}, "typo"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(
    client: FlaskClient, body: dict, named: str
) -> None:
    response = client.post("/api/models", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "INVALID_FIELD"
    assert named in error["message"]
    assert client.get("/api/models/list").get_json()["data"]["totalElements"] == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b""])
def test_create_rejects_a_body_that_is_not_a_json_object(client: FlaskClient, raw: bytes) -> None:
    response = client.post("/api/models", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "INVALID_JSON"


def test_list_filters_and_paginates(client: FlaskClient) -> None:
    made = [create_model(client, modelNo=f"G{1 + i % 4}", modelVer=f"v{i}") for i in range(7)]
    client.post(f"/api/train/run/{made[0]['uuid']}")

    everything = client.get("/api/models/list?status=&page=0&size=3").get_json()["data"]
    assert (everything["totalElements"], everything["totalPages"]) == (7, 3)
    assert [m["modelVer"] for m in everything["content"]] == ["v6", "v5", "v4"]  # newest first
    last = client.get("/api/models/list?page=2&size=3").get_json()["data"]
    assert [m["modelVer"] for m in last["content"]] == ["v0"]

    running = client.get("/api/models/list?status=IN_PROGRESS").get_json()["data"]
    assert [m["uuid"] for m in running["content"]] == [made[0]["uuid"]]
    g2 = client.get("/api/models/list?modelNo=G2").get_json()["data"]
    assert sorted(m["modelVer"] for m in g2["content"]) == ["v1", "v5"]
    both = client.get("/api/models/list?modelNo=G1&status=READY").get_json()["data"]
    assert [m["modelVer"] for m in both["content"]] == ["v4"]


@pytest.mark.parametrize(
    "query", ["status=DONE", "page=-1", "size=0", "size=abc", "page=x", "size=10000"]
)
def test_list_rejects_bad_query(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/models/list?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "INVALID_QUERY"
    assert query.split("=")[0] in response.get_json()["error"]["message"]


def test_metric_summary_on_detail_and_opt_in_on_list(client: FlaskClient) -> None:
    model = create_model(client)
    assert client.get(f"/api/models/{model['uuid']}").get_json()["data"]["metricSummary"] == {}
    plain = client.get("/api/models/list").get_json()["data"]["content"][0]
    assert "metricSummary" not in plain
    rich = client.get("/api/models/list?withSummary=true").get_json()["data"]["content"][0]
    assert rich["metricSummary"] == {}


def test_list_totals_may_be_reused_for_the_configured_seconds(settings, db, broker) -> None:
    from app.factory import create_app

    app = create_app(settings.with_overrides(list_count_cache_s=60))
    client = app.test_client()
    create_model(client)
    assert client.get("/api/models/list").get_json()["data"]["totalElements"] == 1
    create_model(client)
    cached = client.get("/api/models/list").get_json()["data"]
    assert cached["totalElements"] == 1, "the total is reused within LIST_COUNT_CACHE_S"
    assert len(cached["content"]) == 2, "the rows themselves are always fresh"
    assert client.get("/api/models/list?modelNo=G1").get_json()["data"]["totalElements"] == 2
    app.extensions["trainyard"].dispose()
