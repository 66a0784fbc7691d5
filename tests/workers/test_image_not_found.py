"""Issue 11 item 2 on the real stack (worker process, Docker engine): a job whose image is not
on its node ends IMAGE_NOT_FOUND, not as a training-code error (CONTAINER_EXIT_125), and no
restart is offered while no live node has the image. The node lists its images with its
heartbeat."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Node
from tests.integration.helpers import create_model
from tests.workers.conftest import wait_for_status, wait_until

MISSING = "trainyard/no-such-image:never"


def _images(db: sessionmaker[Session], node: str) -> list[str] | None:
    with db() as session:
        row = session.get(Node, node)
        return row.images if row is not None else None


def test_a_missing_image_ends_image_not_found_and_leaves_no_restart(
    client: FlaskClient, db: sessionmaker[Session], workers, trainer_image: str
) -> None:
    # Submitted while no node is alive: the API cannot know, and the job waits in the queue.
    model = create_model(client, image=MISSING, params={"total_epoch": 2, "val_interval": 1})
    uid = model["uuid"]
    assert client.post(f"/api/train/run/{uid}").status_code == 200
    workers("node-a")

    failed = wait_for_status(client, uid, "statusCd", "ERROR", 60)

    assert failed["lastError"] == f"IMAGE_NOT_FOUND: image '{MISSING}' is not on node node-a"
    job = failed["jobs"][-1]
    assert (job["statusCd"], job["exitCode"]) == ("FAILED", 125)
    assert "CONTAINER_EXIT" not in (job["errorMessage"] or "")
    # The node's heartbeat lists what it has; the missing image is not offered again.
    assert trainer_image in wait_until(lambda: _images(db, "node-a"), 10, "the node's images")
    assert failed["allowedCommands"] == []
    again = client.post(f"/api/train/restart/{uid}")
    assert again.status_code == 409, again.get_json()
    assert again.get_json()["error"]["code"] == "IMAGE_NOT_FOUND"
    refused = client.post("/api/models", json={**_body(), "image": MISSING})
    assert refused.status_code == 400
    message = refused.get_json()["error"]["message"]
    assert f"'{MISSING}' is on no live node (nodes: node-a)" in message


def _body() -> dict:
    return {"modelNo": "G1", "modelVer": "v1", "trainType": "GENERAL",
            "params": {"total_epoch": 2, "val_interval": 1}}  # fmt: skip
