"""Auth, health, the OpenAPI document and the docs page."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.config import Settings
from app.factory import create_app
from tests.integration.helpers import create_model, documented_path


def test_api_token_guards_writes_only(settings: Settings, db, broker) -> None:
    app = create_app(settings.with_overrides(api_token="s3cret"))
    client = app.test_client()
    body = {"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 2}}
    denied = client.post("/api/models", json=body)
    assert denied.status_code == 401
    assert denied.get_json()["error"]["code"] == "UNAUTHORIZED"
    assert (
        client.post("/api/models", json=body, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    made = client.post("/api/models", json=body, headers={"Authorization": "Bearer s3cret"})
    assert made.status_code == 201
    uid = made.get_json()["data"]["uuid"]
    assert client.post(f"/api/train/run/{uid}").status_code == 401
    assert client.get("/api/models/list").status_code == 200  # reads stay open
    assert client.get(f"/api/models/{uid}").get_json()["data"]["statusCd"] == "READY"
    app.extensions["trainyard"].dispose()


def test_health_reports_database_and_broker(client: FlaskClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["database"] == {"ok": True, "dialect": "postgresql"}
    assert data["broker"] == {"ok": True}
    assert data["status"] == "ok" and data["down"] == []


def test_health_says_when_the_broker_is_down(settings: Settings, db) -> None:
    app = create_app(settings.with_overrides(broker_url="redis://127.0.0.1:1/0"))
    response = app.test_client().get("/api/health")
    assert response.status_code == 503
    data = response.get_json()["data"]
    assert data["broker"] == {"ok": False, "error": "unreachable"} and data["down"] == ["broker"]
    app.extensions["trainyard"].dispose()


def test_openapi_documents_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api") or rule.rule.startswith("/api/docs/assets"):
            continue
        path = documented_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is not in the OpenAPI document"
    assert "CreateModel" in document["components"]["schemas"]


def test_docs_page_serves_swagger_ui(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and b"/api/openapi.json" in page.data
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_unknown_route_and_method_use_the_envelope(client: FlaskClient) -> None:
    create_model(client)
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and missing.get_json()["success"] is False
    wrong_method = client.get("/api/train/run/00000000-0000-0000-0000-000000000000")
    assert wrong_method.status_code == 405 and wrong_method.get_json()["success"] is False
