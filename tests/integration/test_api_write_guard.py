"""What every write must carry (app/api/auth.py): JSON, the token when one is set, and a body
within the cap. A cross-site form can therefore run no command (issue 10, item 5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.factory import create_app
from tests.integration.helpers import create_model

BODY = {"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 2}}


def _status(client: FlaskClient, uid: str) -> str:
    return str(client.get(f"/api/models/{uid}").get_json()["data"]["statusCd"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # fetch(url, {method: "POST", mode: "no-cors"}) from another site: no body
        {"data": {"x": "1"}},  # <form method=post>: application/x-www-form-urlencoded
        {"data": b"", "content_type": "multipart/form-data; boundary=x"},
        {"data": b"{}", "content_type": "text/plain"},  # <form enctype=text/plain>
        {"data": b"{}", "content_type": "application/jsonx"},
    ],
)
def test_a_command_that_is_not_json_is_a_415_and_runs_nothing(
    client: FlaskClient, kwargs: dict[str, object]
) -> None:
    uid = create_model(client)["uuid"]
    if not kwargs:
        kwargs = {"headers": {"Content-Type": ""}}
    for command in ("run", "restart", "resume", "cancel", "test/cancel", "status"):
        response = client.post(f"/api/train/{command}/{uid}", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 415, (command, response.get_json())
        assert response.get_json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert _status(client, uid) == "READY"
    create = client.post("/api/models", **kwargs)  # type: ignore[arg-type]
    assert create.status_code == 415


def test_json_commands_with_or_without_a_body_pass(client: FlaskClient) -> None:
    uid = create_model(client)["uuid"]
    run = client.post(f"/api/train/run/{uid}", content_type="application/json; charset=utf-8")
    assert run.status_code == 200, run.get_json()
    cancel = client.post(f"/api/train/cancel/{uid}", json={})
    assert cancel.status_code == 200, cancel.get_json()


@pytest.fixture
def guarded(settings: Settings, db: sessionmaker[Session], broker: object) -> Iterator[FlaskClient]:
    app = create_app(settings.with_overrides(api_token="s3cret", max_body_bytes=4096))
    yield app.test_client()
    app.extensions["trainyard"].dispose()


AUTH = {"Authorization": "Bearer s3cret"}


def test_with_a_token_a_write_without_it_is_a_401(guarded: FlaskClient) -> None:
    uid = guarded.post("/api/models", json=BODY, headers=AUTH).get_json()["data"]["uuid"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer é"}):
        for kwargs in ({"json": {}}, {"data": {"x": "1"}}):  # JSON or a cross-site form
            response = guarded.post(f"/api/train/run/{uid}", headers=headers, **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 401, (headers, kwargs, response.get_json())
            assert response.get_json()["error"]["code"] == "UNAUTHORIZED"
    assert _status(guarded, uid) == "READY"
    assert guarded.post(f"/api/train/run/{uid}", json={}, headers=AUTH).status_code == 200


def test_a_body_over_the_cap_is_a_413_in_the_envelope(guarded: FlaskClient) -> None:
    big = {**BODY, "memo": "x" * 5000}
    response = guarded.post("/api/models", json=big, headers=AUTH)
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "REQUEST_ENTITY_TOO_LARGE" and "4096" in error["message"]
    uid = guarded.post("/api/models", json=BODY, headers=AUTH).get_json()["data"]["uuid"]
    command = guarded.post(f"/api/train/run/{uid}", json={"x": "y" * 5000}, headers=AUTH)
    assert command.status_code == 413
    assert _status(guarded, uid) == "READY"


def test_the_default_body_cap_is_one_mebibyte(client: FlaskClient) -> None:
    response = client.post("/api/models", json={**BODY, "memo": "x" * (1024 * 1024)})
    assert response.status_code == 413
    assert response.get_json()["success"] is False


def test_without_a_token_only_loopback_host_names_are_served(
    client: FlaskClient, settings: Settings, db: sessionmaker[Session], broker: object
) -> None:
    """DNS rebinding: evil.example re-pointed at 127.0.0.1 is same-origin for the browser, so
    its page could send JSON; the Host header still says evil.example."""
    uid = create_model(client)["uuid"]
    for host in ("evil.example", "evil.example:8000", "10.0.0.5:8000", "127.0.0.1.evil.example"):
        for response in (
            client.post(f"/api/train/run/{uid}", headers={"Host": host}),
            client.get(f"/api/models/{uid}", headers={"Host": host}),
        ):
            assert response.status_code == 403, (host, response.get_json())
            assert response.get_json()["error"]["code"] == "HOST_NOT_ALLOWED"
    assert _status(client, uid) == "READY"
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"):
        assert client.get(f"/api/models/{uid}", headers={"Host": host}).status_code == 200, host
    # With a token (or the explicit opt-out) the token is what guards, whatever the name.
    for overrides in ({"api_token": "s3cret"}, {"allow_insecure_no_token": True}):
        app = create_app(settings.with_overrides(**overrides))
        response = app.test_client().get(f"/api/models/{uid}", headers={"Host": "api.example"})
        assert response.status_code == 200, overrides
        app.extensions["trainyard"].dispose()
