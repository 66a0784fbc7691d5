"""GET /api/models/<uuid>/metrics[/summary|/test]: envelope, downsampling, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Model
from app.db.session import transaction
from app.services.status_writes import lock_model_by_id
from tests.metrics.conftest import Ids, ingest, new_job, new_model, write


def uuid_of(db: sessionmaker[Session], model_id: int) -> str:
    with db() as session:
        return str(session.get_one(Model, model_id).uuid)


@pytest.fixture
def trained(db: sessionmaker[Session], tmp_path: Path) -> tuple[Ids, str]:
    ids = new_model(db, {"total_epoch": 3000, "val_interval": 10})
    train = "epoch,loss,lr\n" + "".join(
        f"{e},{50.0 if e == 1777 else 1 / e},{'nan' if e == 5 else 0.1}\n" for e in range(1, 3001)
    )
    val = "epoch,val_loss\n" + "".join(f"{e},{abs(e - 1230) / 1000}\n" for e in range(10, 3001, 10))
    write(tmp_path / "train" / "train.csv", train)
    write(tmp_path / "train" / "val.csv", val)
    ingest(db, ids, tmp_path / "train")
    return ids, uuid_of(db, ids.model)


def test_a_short_series_comes_whole(client: FlaskClient, trained: tuple[Ids, str]) -> None:
    _, uuid = trained
    body = client.get(f"/api/models/{uuid}/metrics?split=val&maxPoints=1000").get_json()
    assert body["success"] is True
    data = body["data"]
    assert data["split"] == "val" and data["columns"] == ["val_loss"]
    assert data["total"] == 300 and len(data["points"]) == 300
    assert data["downsampled"] is False and data["method"] == "none"
    assert data["points"][0] == {"epoch": 10, "step": None, "val_loss": 1.22}
    assert data["bestEpoch"] == 1230


def test_a_long_series_is_thinned_keeping_ends_best_and_spikes(
    client: FlaskClient, trained: tuple[Ids, str]
) -> None:
    _, uuid = trained
    data = client.get(f"/api/models/{uuid}/metrics?split=train&maxPoints=100").get_json()["data"]
    epochs = [p["epoch"] for p in data["points"]]
    assert data["total"] == 3000 and data["downsampled"] is True
    assert data["method"] == "minmax-buckets" and len(epochs) <= 100
    assert epochs == sorted(epochs)
    assert {1, 3000, 1230, 1777} <= set(epochs)  # first, last, best (val) and the loss spike
    assert data["columns"] == ["loss", "lr"]
    only_loss = client.get(f"/api/models/{uuid}/metrics?maxPoints=10&metrics=loss").get_json()
    assert set(only_loss["data"]["points"][0]) == {"epoch", "step", "loss"}
    assert len(only_loss["data"]["points"]) <= 10


def test_odd_values_travel_as_strings(client: FlaskClient, trained: tuple[Ids, str]) -> None:
    _, uuid = trained
    points = client.get(f"/api/models/{uuid}/metrics?maxPoints=5000").get_json()["data"]["points"]
    assert points[4] == {"epoch": 5, "step": None, "loss": 0.2, "lr": "NaN"}


def test_summary(client: FlaskClient, trained: tuple[Ids, str]) -> None:
    _, uuid = trained
    data = client.get(f"/api/models/{uuid}/metrics/summary").get_json()["data"]
    assert data["bestEpoch"] == 1230 and data["bestEpochFinal"] is True
    assert (data["bestMetric"], data["bestMode"]) == ("val_loss", "min")
    assert data["splits"]["train"]["loss"] == {
        "min": 1 / 3000,
        "minEpoch": 3000,
        "max": 50.0,
        "maxEpoch": 1777,
        "last": 1 / 3000,
        "lastEpoch": 3000,
    }
    assert data["splits"]["train"]["lr"]["last"] == 0.1
    assert data["splits"]["val"]["val_loss"]["min"] == 0.0
    again = client.get(f"/api/models/{uuid}/metrics/summary").get_json()["data"]
    assert again == data  # the second answer comes from the cache


def test_test_rows(
    client: FlaskClient, db: sessionmaker[Session], trained: tuple[Ids, str], tmp_path: Path
) -> None:
    ids, uuid = trained
    with transaction(db) as session:
        model = lock_model_by_id(session, ids.model)
        assert model is not None
        job = new_job(session, model, "EVAL").id
    write(tmp_path / "eval" / "test" / "test.csv", "epoch,test_loss,acc_a\n1230,0.2,inf\n")
    ingest(db, Ids(ids.model, job), tmp_path / "eval", kind="eval")
    data = client.get(f"/api/models/{uuid}/metrics/test").get_json()["data"]
    assert data == {
        "columns": ["test_loss", "acc_a"],
        "rows": [
            {"jobId": job, "epoch": 1230, "step": None, "test_loss": 0.2, "acc_a": "Infinity"}
        ],
    }
    summary = client.get(f"/api/models/{uuid}/metrics/summary").get_json()["data"]["splits"]
    assert summary["test"]["test_loss"]["minEpoch"] == 1230


def test_a_model_without_metrics(client: FlaskClient, db: sessionmaker[Session]) -> None:
    uuid = uuid_of(db, new_model(db).model)
    data = client.get(f"/api/models/{uuid}/metrics").get_json()["data"]
    assert data == {
        "split": "train",
        "columns": [],
        "points": [],
        "total": 0,
        "downsampled": False,
        "method": "none",
        "bestEpoch": None,
    }
    assert client.get(f"/api/models/{uuid}/metrics/summary").get_json()["data"]["splits"] == {}
    assert client.get(f"/api/models/{uuid}/metrics/test").get_json()["data"] == {
        "columns": [],
        "rows": [],
    }


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("split=test", 400, "INVALID_QUERY"),
        ("split=validation", 400, "INVALID_QUERY"),
        ("maxPoints=abc", 400, "INVALID_QUERY"),
        ("maxPoints=5", 400, "INVALID_QUERY"),
        ("maxPoints=-1", 400, "INVALID_QUERY"),
        ("maxPoints=1000000", 400, "INVALID_QUERY"),
        ("metrics=nope", 400, "INVALID_QUERY"),
    ],
)
def test_bad_queries_are_400(
    client: FlaskClient, trained: tuple[Ids, str], query: str, status: int, code: str
) -> None:
    _, uuid = trained
    response = client.get(f"/api/models/{uuid}/metrics?{query}")
    assert response.status_code == status
    assert response.get_json() == {
        "success": False,
        "error": {"code": code, "message": response.get_json()["error"]["message"]},
    }


@pytest.mark.parametrize("suffix", ["metrics", "metrics/summary", "metrics/test"])
def test_unknown_and_malformed_uuids(client: FlaskClient, suffix: str) -> None:
    missing = client.get(f"/api/models/00000000-0000-0000-0000-000000000000/{suffix}")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "MODEL_NOT_FOUND"
    assert client.get(f"/api/models/not-a-uuid/{suffix}").status_code == 400


def test_the_paths_are_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path in (
        "/api/models/{uuid}/metrics",
        "/api/models/{uuid}/metrics/summary",
        "/api/models/{uuid}/metrics/test",
    ):
        assert "get" in paths[path]


def test_provisional_best_while_training(
    client: FlaskClient, db: sessionmaker[Session], tmp_path: Path
) -> None:
    from app.metrics import ingest_live

    ids = new_model(db)
    write(tmp_path / "t" / "val.csv", "epoch,val_loss\n2,0.5\n4,0.3\n6,0.4\n")
    assert ingest_live(db, ids.model, ids.job, tmp_path / "t") == 3
    data = client.get(f"/api/models/{uuid_of(db, ids.model)}/metrics/summary").get_json()["data"]
    assert data["bestEpoch"] == 4 and data["bestEpochFinal"] is False
    assert not math.isnan(data["splits"]["val"]["val_loss"]["max"])
