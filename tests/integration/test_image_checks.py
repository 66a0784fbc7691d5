"""Issue 11 item 2: the API refuses an image that no live node has — at create (400) and at
every command that starts a container (409, and not in `allowedCommands`) — naming the image.
Nodes are heartbeat rows as the workers write them (workers/heartbeat.py); real PostgreSQL."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.factory import create_app
from tests.conftest import JsonWritesClient
from tests.integration.helpers import beat, create_model, force_states

BODY = {
    "modelNo": "G1",
    "modelVer": "v1",
    "trainType": "GENERAL",
    "params": {"total_epoch": 2, "val_interval": 1},
}


def test_create_refuses_an_image_no_live_node_has(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    beat(db, "node-a", ["trainyard/trainer:latest", "python:3.12"])
    beat(db, "node-gone", ["me/private:1"], age_s=3600)  # silent: its images do not count

    answer = client.post("/api/models", json={**BODY, "image": "me/private:1"})

    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "IMAGE_NOT_FOUND"
    assert "'me/private:1' is on no live node (nodes: node-a)" in error["message"]
    # Names compare as `docker images` shows them.
    for same in ("trainyard/trainer", "docker.io/library/python:3.12"):
        assert client.post("/api/models", json={**BODY, "image": same}).status_code == 201


def test_run_and_restart_are_refused_and_not_offered_while_the_image_is_missing(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    beat(db, "node-a", ["me/x:1"])
    model = create_model(client, image="me/x:1")
    uid = model["uuid"]
    assert "run" in model["allowedCommands"]

    beat(db, "node-a", ["trainyard/trainer:latest"])  # the image was removed from the node
    answer = client.post(f"/api/train/run/{uid}")
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["error"]["code"] == "IMAGE_NOT_FOUND"
    assert "'me/x:1'" in answer.get_json()["error"]["message"]
    assert client.get(f"/api/models/{uid}").get_json()["data"]["allowedCommands"] == []

    force_states(db, model["id"], step1_state="ERROR", status_cd="ERROR",
                 last_error="IMAGE_NOT_FOUND: image 'me/x:1' is not on node node-a")  # fmt: skip
    listed = client.get("/api/models/list").get_json()["data"]["content"]
    assert listed[0]["allowedCommands"] == [], "no restart that would fail again"
    assert client.post(f"/api/train/restart/{uid}").status_code == 409

    beat(db, "node-a", ["me/x:1"])  # loaded again: restart is offered and works
    assert client.get(f"/api/models/{uid}").get_json()["data"]["allowedCommands"] == ["restart"]
    assert client.post(f"/api/train/restart/{uid}").status_code == 200


def test_nothing_is_refused_when_no_live_node_can_tell(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    # No node at all: the job waits in the queue for one.
    assert client.post("/api/models", json={**BODY, "image": "me/x:1"}).status_code == 201
    # A process-runtime node (images NULL) runs any reference; a digest is not in tag lists.
    beat(db, "node-a", ["trainyard/trainer:latest"])
    assert client.post("/api/models", json={**BODY, "image": "me/x@sha256:ab"}).status_code == 201
    beat(db, "node-p", None)
    model = create_model(client, image="me/x:1")
    assert client.post(f"/api/train/run/{model['uuid']}").status_code == 200


def test_settings_a_node_refused_leave_no_restart(
    client: FlaskClient, db: sessionmaker[Session]
) -> None:
    model = create_model(client)
    force_states(db, model["id"], step1_state="ERROR", status_cd="ERROR",
                 last_error="INVALID_RUNTIME_SETTINGS: the engine refused: cpus")  # fmt: skip
    detail = client.get(f"/api/models/{model['uuid']}").get_json()["data"]
    assert detail["allowedCommands"] == []
    answer = client.post(f"/api/train/restart/{model['uuid']}")
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "INVALID_RUNTIME_SETTINGS"


def test_the_read_endpoints_reuse_the_live_images_for_live_images_cache_s(
    settings: Settings, db: sessionmaker[Session], broker: object
) -> None:
    """LIVE_IMAGES_CACHE_S: the list and the detail reuse what they read of the nodes for that
    long (their allowedCommands lag a heartbeat by at most that); a command reads afresh."""
    app = create_app(settings.with_overrides(live_images_cache_s=60))
    app.test_client_class = JsonWritesClient
    client = app.test_client()
    try:
        beat(db, "node-a", ["me/x:1"])
        uid = create_model(client, image="me/x:1")["uuid"]
        assert "run" in client.get(f"/api/models/{uid}").get_json()["data"]["allowedCommands"]

        beat(db, "node-a", ["trainyard/trainer:latest"])  # the image was removed from the node
        shown = client.get("/api/models/list").get_json()["data"]["content"][0]
        assert "run" in shown["allowedCommands"]  # still the images read a moment ago
        answer = client.post(f"/api/train/run/{uid}")  # the command itself reads afresh
        assert answer.status_code == 409, answer.get_json()
    finally:
        app.extensions["trainyard"].dispose()
