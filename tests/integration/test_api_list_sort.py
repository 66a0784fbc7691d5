"""GET /api/models/list sorted, searched and with a metric column; /compare and /metric-names
(docs/dashboard.md, "Sort, search and the metric column" and "Compare")."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Model
from app.domain.timefmt import utcnow
from tests.integration.helpers import create_model
from tests.metrics.conftest import Ids, ingest, new_job, write


def _trained(
    client: FlaskClient, db: sessionmaker[Session], folder: Path, val: str, **fields: Any
) -> dict[str, Any]:
    """A model created through the API whose training stored these curves (val.csv `val`)."""
    model = create_model(client, **fields)
    with db.begin() as session:
        row = session.get_one(Model, model["id"])
        job = new_job(session, row)
        ids = Ids(row.id, job.id)
    write(folder / "val.csv", val)
    write(folder / "train.csv", "epoch,loss\n1,0.9\n2,0.7\n3,0.6\n4,0.5\n")
    ingest(db, ids, folder)
    return model


def _list(client: FlaskClient, query: str) -> dict[str, Any]:
    response = client.get(f"/api/models/list?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def _vers(data: dict[str, Any]) -> list[str]:
    return [item["modelVer"] for item in data["content"]]


def test_sort_by_best_metric_both_ways_paged_with_the_metric_column(
    client: FlaskClient, db: sessionmaker[Session], tmp_path: Path
) -> None:
    header = "epoch,val_loss,val_accuracy\n"
    _trained(client, db, tmp_path / "a", header + "2,0.50,0.70\n4,0.45,0.75\n", modelVer="a")
    _trained(client, db, tmp_path / "b", header + "2,0.30,0.80\n4,0.35,0.85\n", modelVer="b")
    _trained(client, db, tmp_path / "c", header + "2,0.40,0.90\n4,0.42,0.60\n", modelVer="c")
    create_model(client, modelVer="untrained")

    assert _vers(_list(client, "sort=best:val_loss")) == ["b", "c", "a", "untrained"]
    assert _vers(_list(client, "sort=best:val_loss&dir=desc")) == ["a", "c", "b", "untrained"]
    # accuracy is maximised by the rule; `:min` turns it round.
    assert _vers(_list(client, "sort=best:val_accuracy")) == ["c", "b", "a", "untrained"]
    assert _vers(_list(client, "sort=best:val.val_accuracy:min")) == ["c", "a", "b", "untrained"]
    second = _list(client, "sort=best:val_loss&size=2&page=1")
    assert _vers(second) == ["a", "untrained"] and second["totalElements"] == 4

    shown = _list(client, "sort=best:val_loss&metric=val_accuracy")["content"]
    assert shown[0]["metricValue"] == {
        "name": "val_accuracy", "split": "val", "mode": "max", "value": 0.85, "epoch": 4,
    }  # fmt: skip
    assert shown[-1]["metricValue"]["value"] is None
    # Default column: each model's own best_metric (val_loss, min) at its best epoch.
    own = {i["modelVer"]: i["metricValue"] for i in _list(client, "metric=best")["content"]}
    assert own["b"] == {"name": "val_loss", "split": "val", "mode": "min", "value": 0.3, "epoch": 2}
    assert own["a"]["epoch"] == 4 and own["untrained"]["value"] is None
    assert "metricValue" not in _list(client, "")["content"][0]  # opt-in

    names = client.get("/api/models/metric-names").get_json()["data"]
    assert names == {"val": ["val_accuracy", "val_loss"], "train": ["loss"]}


def test_sort_by_time(client: FlaskClient, db: sessionmaker[Session]) -> None:
    first, second, _ = (create_model(client, modelVer=v) for v in ("first", "second", "never"))
    now = utcnow()
    with db.begin() as session:
        for model, minutes in ((first, 30), (second, 10)):
            session.execute(
                update(Model)
                .where(Model.id == model["id"])
                .values(step1_end_dttm=now.replace(microsecond=0) - _minutes(minutes))
            )
    assert _vers(_list(client, "sort=step1EndDttm")) == ["second", "first", "never"]
    assert _vers(_list(client, "sort=step1EndDttm&dir=asc")) == ["first", "second", "never"]
    assert _vers(_list(client, "sort=created&dir=asc")) == ["first", "second", "never"]
    assert _vers(_list(client, "")) == ["never", "second", "first"]


def _minutes(n: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=n)


def test_search_on_version_and_memo_with_filters_and_pages(client: FlaskClient) -> None:
    create_model(client, modelVer="resnet-v1", memo="baseline")
    create_model(client, modelVer="vit-v1", memo="ResNet 비교용", modelNo="G2")
    create_model(client, modelVer="vit-v2", memo="긴 학습")
    both = _list(client, "q=RESNET")
    assert sorted(_vers(both)) == ["resnet-v1", "vit-v1"] and both["totalElements"] == 2
    assert _vers(_list(client, "q=resnet&modelNo=G2")) == ["vit-v1"]
    assert _vers(_list(client, "q=긴")) == ["vit-v2"]
    paged = _list(client, "q=vit&size=1&page=1")
    assert paged["totalElements"] == 2 and paged["totalPages"] == 2 and len(paged["content"]) == 1
    assert _list(client, "q=%25")["totalElements"] == 0  # a literal %, not a wildcard


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("sort=bogus", "sort"),
        ("sort=best:", "sort"),
        ("sort=best:val_loss:up", "sort"),
        ("sort=best:val_lss", "sort"),  # no model has it (the message lists what there is)
        ("dir=sideways", "dir"),
        ("metric=val_loss:best", "metric"),
        ("metric=nothing_like_it", "metric"),
        ("q=" + "x" * 101, "q"),
    ],
)
def test_bad_sort_search_or_metric_is_a_400_naming_it(
    client: FlaskClient, db: sessionmaker[Session], tmp_path: Path, query: str, named: str
) -> None:
    _trained(client, db, tmp_path, "epoch,val_loss\n2,0.5\n4,0.4\n")
    response = client.get(f"/api/models/list?{query}")
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "INVALID_QUERY" and error["message"].startswith(named), error
    if "val_lss" in query:
        assert "val_loss" in error["message"]


def test_compare_names_the_differing_parameters(
    client: FlaskClient, db: sessionmaker[Session], tmp_path: Path
) -> None:
    header = "epoch,val_loss\n"
    a = _trained(client, db, tmp_path / "a", header + "2,0.5\n4,0.4\n",
                 params={"total_epoch": 4, "val_interval": 2, "lr": 0.1})  # fmt: skip
    b = _trained(client, db, tmp_path / "b", header + "2,0.3\n4,0.6\n",
                 params={"total_epoch": 4, "val_interval": 2, "lr": 0.01, "seed": 7})  # fmt: skip
    response = client.get(f"/api/models/compare?uuids={b['uuid']},{a['uuid']}")
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert [m["modelVer"] for m in data["models"]] == [b["modelVer"], a["modelVer"]]
    assert "lr" in data["differingParams"] and "seed" in data["differingParams"]
    assert "total_epoch" not in data["differingParams"]
    val_loss = data["models"][0]["metricSummary"]["val"]["val_loss"]
    assert (val_loss["min"], val_loss["minEpoch"], val_loss["last"]) == (0.3, 2, 0.6)
    assert data["models"][0]["bestEpoch"] == 2

    assert client.get("/api/models/compare").status_code == 400
    assert client.get("/api/models/compare?uuids=nope").status_code == 400
    many = ",".join(str(uuid.uuid4()) for _ in range(13))
    assert client.get(f"/api/models/compare?uuids={many}").status_code == 400
    missing = client.get(f"/api/models/compare?uuids={a['uuid']},{uuid.uuid4()}")
    assert missing.status_code == 404
