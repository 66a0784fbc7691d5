"""The PyTorch example (examples/pytorch, issue 11 item 6) on the real stack: API, a worker
process, PostgreSQL, Redis and Docker. One model goes run → cancel → resume → complete → test
on the best epoch, with the example's defaults: ImageNet-shaped batches (64×3×224×224) through
a DataLoader with two worker processes, so the job's /dev/shm must hold several 38 MB batches.

Kept short for `make test` on a 2-core box: 3 epochs of 4 batches; each wait is generous
because importing torch in a fresh container takes seconds on a loaded machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.integration.helpers import create_model
from tests.workers.conftest import model_of, wait_for_status, wait_running, wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_IMAGE = "trainyard/example-pytorch:latest"
NODE = "pytorch-node"
EPOCHS = 3


@pytest.fixture(scope="session")
def example_image() -> str:
    """Built by `make images` (scripts/build-images.sh), and kept while its sources are
    unchanged: a second run builds nothing."""
    for _ in range(2):
        built = subprocess.run(
            ["bash", str(ROOT / "scripts" / "build-images.sh")],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout + built.stderr
    assert f"{EXAMPLE_IMAGE} is up to date" in built.stdout, built.stdout
    return EXAMPLE_IMAGE


def _api(client: FlaskClient, method: str, path: str) -> Any:
    answer = client.open(path, method=method)
    body = answer.get_json()
    assert answer.status_code < 400 and body["success"], (path, answer.status_code, body)
    return body["data"]


def _epochs(client: FlaskClient, uid: str, split: str) -> list[int]:
    chart = _api(client, "GET", f"/api/models/{uid}/metrics?split={split}")
    return [int(point["epoch"]) for point in chart["points"]]


def test_pytorch_example_run_cancel_resume_complete_test(
    client: FlaskClient, workers, example_image: str
) -> None:
    workers(NODE)
    model = create_model(
        client, image=example_image, params={"total_epoch": EPOCHS, "val_interval": 1}
    )
    uid = model["uuid"]

    _api(client, "POST", f"/api/train/run/{uid}")
    wait_running(client, uid, checkpoint=1, timeout_s=240)
    first = _api(client, "POST", f"/api/train/cancel/{uid}")["job"]
    # Its log is stored once the container ended (SIGTERM: the epoch is dropped, the last
    # finished one checkpointed) and was recorded.
    wait_until(
        lambda: _api(client, "GET", f"/api/models/{uid}/logs?jobId={first['id']}")["available"],
        60,
        "the cancelled container's end",
    )
    stopped = model_of(client, uid)
    assert (stopped["statusCd"], stopped["lastError"]) == ("STOPPED", "CANCELED_BY_USER")
    kept = stopped["progress"]["checkpointEpoch"]
    assert kept is not None and 1 <= kept < EPOCHS, stopped["progress"]
    assert stopped["jobs"][0]["statusCd"] == "CANCELED"

    _api(client, "POST", f"/api/train/resume/{uid}")
    done = wait_for_status(client, uid, "statusCd", "COMPLETED", 240)
    resumed = done["jobs"][-1]
    assert (resumed["statusCd"], resumed["exitCode"]) == ("SUCCESS", 0)
    # The curves: each epoch once, across the cancelled and the resumed job.
    assert _epochs(client, uid, "train") == list(range(1, EPOCHS + 1))
    assert _epochs(client, uid, "val") == list(range(1, EPOCHS + 1))
    best = done["bestEpoch"]
    assert best in range(1, EPOCHS + 1)
    train_log = _api(client, "GET", f"/api/models/{uid}/logs?jobId={resumed['id']}")["logTail"]
    assert f"epoch {EPOCHS}/{EPOCHS}: loss" in train_log
    assert "Traceback" not in train_log and "shared memory" not in train_log

    _api(client, "POST", f"/api/train/test/run/{best}/{uid}")
    tested = wait_for_status(client, uid, "step2Status", "COMPLETED", 180)
    assert tested["statusCd"] == "COMPLETED"
    results = _api(client, "GET", f"/api/models/{uid}/results")
    summary = results["summary"]
    assert (results["epoch"], summary["epoch"], summary["n_samples"]) == (best, best, 128)
    assert list(summary["per_class"]) == summary["classes"] == [f"class_{i}" for i in range(4)]
    assert sum(row["total"] for row in summary["per_class"].values()) == 128
    assert results["columns"][:3] == ["epoch", "test_loss", "test_accuracy"]
    assert results["downloadAvailable"]
    test_log = _api(client, "GET", f"/api/models/{uid}/logs")["logTail"]
    assert f"test epoch {best}: accuracy" in test_log
