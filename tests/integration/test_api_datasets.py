"""create-tmp and counts (SPEC §6–7) over HTTP: split lists from the model's dataset."""

from __future__ import annotations

from flask.testing import FlaskClient

from app.config import Settings
from app.datasets import generate_demo_dataset
from app.domain import layout
from tests.integration.helpers import create_model


def test_counts_then_create_tmp_then_counts(client: FlaskClient, settings: Settings) -> None:
    generate_demo_dataset(settings.dataset_root / "demo", n_samples=300)
    params = {"total_epoch": 2, "seed": 7, "split": {"train": 0.6, "val": 0.2, "test": 0.2}}
    model = create_model(client, dataset="demo", params=params)
    uid = model["uuid"]

    planned = client.get(f"/api/train/counts/{uid}").get_json()["data"]
    assert planned["source"] == "planned"
    assert planned["total"] == 300
    sizes = {split: planned["splits"][split]["total"] for split in ("train", "val", "test")}
    assert sizes == {"train": 180, "val": 60, "test": 60}
    assert sum(planned["splits"]["train"]["labels"].values()) == 180

    created = client.post(f"/api/train/create-tmp/{uid}")
    assert created.status_code == 200
    lists = layout.split_dir(settings.output_root, uid)
    train_ids = (lists / "train.txt").read_text().split()
    assert len(train_ids) == 180 and len(set(train_ids)) == 180
    assert created.get_json()["data"]["splits"] == planned["splits"]

    again = client.get(f"/api/train/counts/{uid}").get_json()["data"]
    assert again["source"] == "created" and again["splits"] == planned["splits"]
    # Deterministic for the seed and ratios: writing again gives the same lists.
    client.post(f"/api/train/create-tmp/{uid}")
    assert (lists / "train.txt").read_text().split() == train_ids


def test_a_model_without_a_dataset_is_a_409(client: FlaskClient) -> None:
    model = create_model(client)
    for response in (
        client.post(f"/api/train/create-tmp/{model['uuid']}"),
        client.get(f"/api/train/counts/{model['uuid']}"),
    ):
        assert response.status_code == 409
        assert response.get_json()["error"]["code"] == "NO_DATASET"


def test_a_broken_manifest_is_a_409_naming_the_problem(
    client: FlaskClient, settings: Settings
) -> None:
    broken = settings.dataset_root / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.csv").write_text("sample,label,split\na,cat,train\na,dog,val\n")
    model = create_model(client, dataset="broken")
    response = client.post(f"/api/train/create-tmp/{model['uuid']}")
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "DATASET_INVALID"
    assert "manifest.csv" in error["message"]
