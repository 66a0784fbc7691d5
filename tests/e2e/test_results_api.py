"""GET /api/models/<uuid>/{logs,results,results/download}: the read-only views behind the
dashboard's log section and its [결과 보기] / [다운로드] buttons (no containers needed)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import update

from app.config import Settings
from app.db.models import Job, Model
from app.domain import layout
from tests.integration.helpers import create_model


def _add_job(db, model_id: int, attempt: int, job_type: str, status: str, **values: Any) -> int:
    with db.begin() as session:
        job = Job(
            model_id=model_id,
            job_type=job_type,
            attempt=attempt,
            status_cd=status,
            params=values.pop("params", {}),
            image="trainyard/trainer:latest",
            resources={},
            **values,
        )
        session.add(job)
        session.flush()
        return job.id


def _set_current(db, model_id: int, job_id: int) -> None:
    with db.begin() as session:
        session.execute(update(Model).where(Model.id == model_id).values(current_attempt_id=job_id))


def _write_eval_outputs(settings: Settings, uid: str, job_id: int, epoch: int) -> None:
    test_dir = layout.eval_dir(settings.output_root, uid, job_id) / "test"
    test_dir.mkdir(parents=True)
    (test_dir / "test.csv").write_text(f"epoch,test_loss,test_accuracy,acc_a\n{epoch},0.25,0.9,1\n")
    (test_dir / "summary.json").write_text(
        json.dumps(
            {
                "epoch": epoch,
                "test_loss": 0.25,
                "test_accuracy": 0.9,
                "classes": ["a"],
                "confusion_matrix": [[9]],
                "checkpoint": "/out/checkpoints/epoch_0004.ckpt",
            }
        )
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("test.csv", "epoch\n4\n")
    layout.results_zip(layout.eval_dir(settings.output_root, uid, job_id), epoch).write_bytes(
        buffer.getvalue()
    )


def test_logs_of_current_last_and_chosen_job(client: FlaskClient, db) -> None:
    model = create_model(client)
    uid = model["uuid"]
    empty = client.get(f"/api/models/{uid}/logs").get_json()["data"]
    assert empty["jobId"] is None and empty["available"] is False

    failed = _add_job(
        db,
        model["id"],
        1,
        "TRAIN",
        "FAILED",
        exit_code=3,
        log_tail="epoch 1\nerror: boom\n",
        error_message="epoch 1\nerror: boom\n",
    )
    running = _add_job(db, model["id"], 2, "TRAIN", "RUNNING")
    _set_current(db, model["id"], running)

    live = client.get(f"/api/models/{uid}/logs").get_json()["data"]
    assert (live["jobId"], live["running"], live["logTail"]) == (running, True, None)
    assert "stored when the container ends" in live["note"]

    chosen = client.get(f"/api/models/{uid}/logs?jobId={failed}").get_json()["data"]
    assert chosen["logTail"].endswith("error: boom\n") and chosen["statusName"] == "실패"
    assert chosen["note"] is None

    assert client.get(f"/api/models/{uid}/logs?jobId=999999").status_code == 404
    for wrong in ("../../etc", "²", "٣", "9" * 30):  # never a 500, whatever the digits
        bad = client.get(f"/api/models/{uid}/logs", query_string={"jobId": wrong})
        assert bad.status_code == 400 and "jobId" in bad.get_json()["error"]["message"]


def test_results_and_download_of_the_latest_successful_test(
    client: FlaskClient, db, settings: Settings
) -> None:
    model = create_model(client, modelNo="G3", modelVer="v1.2.3")
    uid = model["uuid"]
    assert client.get(f"/api/models/{uid}/results").status_code == 404
    missing = client.get(f"/api/models/{uid}/results/download")
    assert missing.status_code == 404
    assert missing.get_json() == {
        "success": False,
        "error": {"code": "NO_RESULTS", "message": "This model has no successful test yet."},
    }

    _add_job(db, model["id"], 1, "TRAIN", "SUCCESS")
    first = _add_job(db, model["id"], 2, "EVAL", "SUCCESS", params={"epoch": 2})
    _write_eval_outputs(settings, uid, first, 2)
    second = _add_job(db, model["id"], 3, "EVAL", "SUCCESS", params={"epoch": 4})
    _write_eval_outputs(settings, uid, second, 4)
    _add_job(db, model["id"], 4, "EVAL", "FAILED", params={"epoch": 2})  # not a result

    data = client.get(f"/api/models/{uid}/results").get_json()["data"]
    assert (data["jobId"], data["epoch"]) == (second, 4)
    assert data["summary"]["test_accuracy"] == 0.9 and "checkpoint" not in data["summary"]
    assert data["columns"] == ["epoch", "test_loss", "test_accuracy", "acc_a"]
    assert data["rows"] == [{"epoch": 4, "test_loss": 0.25, "test_accuracy": 0.9, "acc_a": 1}]
    assert data["downloadAvailable"] and data["problems"] == []

    download = client.get(f"/api/models/{uid}/results/download")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert "G3_v1.2.3_" in download.headers["Content-Disposition"]
    assert "results_epoch_4.zip" in download.headers["Content-Disposition"]
    assert zipfile.ZipFile(io.BytesIO(download.data)).namelist() == ["test.csv"]
    download.close()

    # Files gone from disk: the answer says so instead of failing.
    eval_dir = layout.eval_dir(settings.output_root, uid, second)
    layout.results_zip(eval_dir, 4).unlink()
    (eval_dir / "test" / "summary.json").write_text("{not json")
    data = client.get(f"/api/models/{uid}/results").get_json()["data"]
    assert data["summary"] is None and data["downloadAvailable"] is False
    assert any("summary.json" in p for p in data["problems"])
    gone = client.get(f"/api/models/{uid}/results/download")
    assert gone.status_code == 404
    assert gone.get_json()["error"]["code"] == "RESULTS_FILE_MISSING"


def test_unknown_and_invalid_uuids(client: FlaskClient, db) -> None:
    for path in ("logs", "results", "results/download"):
        unknown = client.get(f"/api/models/{uuid.uuid4()}/{path}")
        assert unknown.status_code == 404
        assert unknown.get_json()["error"]["code"] == "MODEL_NOT_FOUND"
        invalid = client.get(f"/api/models/..%2F..%2Fetc/{path}")
        assert invalid.status_code in (400, 404)
        assert invalid.get_json()["success"] is False


def test_dashboard_is_served_at_the_root(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "모델 번호" in page.get_data(as_text=True)
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/static/../__init__.py").status_code == 404
