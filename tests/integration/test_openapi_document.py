"""The generated OpenAPI document: OpenAPI 3.0 that the bundled Swagger UI renders, closed
answer schemas, and the answers of the main operations validated against their types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from pydantic import TypeAdapter

from app.api import responses as r
from app.api.docs import OPERATIONS, build_openapi
from tests.integration.helpers import documented_path

#: Open on purpose: the caller's hyper-parameters (every key goes to the trainer).
OPEN_SCHEMAS = {"TrainParams"}


def _walk(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}/{i}")


def test_the_document_is_openapi_30_without_31_keywords() -> None:
    document = build_openapi()
    assert document["openapi"] == "3.0.3"
    for where, node in _walk(document["components"]["schemas"]):
        if where.endswith("/properties"):
            continue  # field names, not keywords
        assert "const" not in node and "examples" not in node, where
        assert not isinstance(node.get("type"), list), where
        assert node.get("type") != "null", where
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, True), bool), where
        if "$ref" in node:
            assert set(node) == {"$ref"}, f"{where}: 3.0 ignores what stands beside a $ref"


def test_every_schema_with_fields_is_closed() -> None:
    """A key an answer has and its schema lacks fails the API tests (additionalProperties)."""
    for name, schema in build_openapi()["components"]["schemas"].items():
        if "properties" in schema and name not in OPEN_SCHEMAS:
            assert schema.get("additionalProperties") is False, name


def test_the_table_names_only_real_routes(app: Flask) -> None:
    routes = {
        (documented_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    for op in OPERATIONS:
        assert (op.path, op.method.upper()) in routes, f"{op.method} {op.path} is no route"


def _data(answer: Any, response: Any) -> Any:
    """The body validated against Ok[answer] (closed types: an unknown key fails)."""
    return TypeAdapter(r.Ok[answer]).validate_python(response.get_json(), strict=True)["data"]


def test_the_main_answers_match_their_types_key_for_key(client: FlaskClient) -> None:
    created = client.post(
        "/api/models",
        json={
            "modelNo": "G1",
            "modelVer": "v1",
            "params": {"total_epoch": 2},
            "resources": {"memoryMb": 64},
        },
    )
    assert created.status_code == 201
    model = _data(r.ModelDetail, created)
    assert model["resources"] == {"gpus": 0, "memory_mb": 64}  # the name the schema gives
    uid = model["uuid"]

    ran = _data(r.CommandAnswer, client.post(f"/api/train/run/{uid}"))
    assert ran["job"] is not None and ran["job"]["jobType"] == "TRAIN"
    detail = _data(r.ModelDetail, client.get(f"/api/models/{uid}"))
    assert len(detail["jobs"]) == 1 and "metricSummary" in detail
    page = _data(r.ModelPage, client.get("/api/models/list?withSummary=true"))
    assert page["content"][0]["uuid"] == uid and "metricSummary" in page["content"][0]
    synced = _data(r.SyncAnswer, client.post(f"/api/train/status/{uid}"))
    assert synced["sync"]["requested"] is False
    canceled = _data(r.CommandAnswer, client.post(f"/api/train/cancel/{uid}"))
    assert canceled["statusCd"] != "IN_PROGRESS"
    _data(r.LogAnswer, client.get(f"/api/models/{uid}/logs"))
    _data(r.MetricsOverview, client.get(f"/api/models/{uid}/metrics/summary"))

    refused = client.post(f"/api/train/resume/{uid}")
    assert refused.status_code == 409
    TypeAdapter(r.Error).validate_python(refused.get_json(), strict=True)
