"""GET /api/openapi.json (OpenAPI 3.1) and a browsable page at /api/docs (Swagger UI, served
from the swagger-ui-bundle package)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from app.api.schemas import CreateModel, ListQuery
from app.domain.states import JobStatus, ModelStatus, StepState
from app.domain.transitions import Command

bp = Blueprint("docs", __name__, url_prefix="/api")

_UUID = {
    "name": "uuid",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_EPOCH = {
    "name": "epoch",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "A repeated command with the same key returns the first answer.",
}


def _envelope(data_ref: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"$ref": data_ref} if data_ref else {}
    return {
        "type": "object",
        "properties": {"success": {"type": "boolean"}, "data": data},
        "required": ["success"],
    }


def _responses(ok_status: str, data_ref: str | None, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        ok_status: {
            "description": "success",
            "content": {"application/json": {"schema": _envelope(data_ref)}},
        }
    }
    if 401 in errors:  # a write: app/api/auth.py answers these before any view runs
        errors = (*errors, 413, 415)
    for status in errors:
        out[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    return out


def _command(summary: str, *params: dict[str, Any], extra_errors: tuple[int, ...] = ()) -> dict:
    return {
        "post": {
            "tags": ["train"],
            "summary": summary,
            "parameters": [*params, _IDEMPOTENCY],
            "security": [{"bearer": []}, {}],
            "responses": _responses(
                "200", "#/components/schemas/CommandResult", 400, 401, 404, 409, *extra_errors
            ),
        }
    }


def _json_schemas() -> dict[str, Any]:
    ref = "#/components/schemas/{model}"
    create = CreateModel.model_json_schema(by_alias=True, ref_template=ref)
    schemas: dict[str, Any] = dict(create.pop("$defs", {}))
    schemas["CreateModel"] = create
    names = {
        "ModelStatus": [s.value for s in ModelStatus],
        "StepState": [s.value for s in StepState],
        "JobStatus": [s.value for s in JobStatus],
    }
    for name, values in names.items():
        schemas[name] = {"type": "string", "enum": values}
    schemas["Model"] = {
        "type": "object",
        "description": "A model as the list shows it (user document §2.1) plus live progress.",
        "properties": {
            "id": {"type": "integer"},
            "uuid": {"type": "string", "format": "uuid"},
            "modelNo": {"type": "string"},
            "modelVer": {"type": "string"},
            "statusCd": {"$ref": "#/components/schemas/ModelStatus"},
            "statusName": {"type": "string"},
            "step1Status": {"$ref": "#/components/schemas/StepState"},
            "step1StatusName": {"type": "string"},
            "step2Status": {"$ref": "#/components/schemas/StepState"},
            "step2StatusName": {"type": "string"},
            **{
                f: {"type": ["string", "null"], "description": "YYYY-MM-DD HH:mm:ss, display TZ"}
                for f in ("step1StrtDttm", "step1EndDttm", "step2StrtDttm", "step2EndDttm")
            },
            "step1Duration": {"type": ["string", "null"], "example": "2시간 15분 0초"},
            "step2Duration": {"type": ["string", "null"]},
            "trainType": {"type": "string"},
            "trainTypeName": {"type": "string"},
            "currentAttemptId": {"type": ["integer", "null"]},
            "memo": {"type": ["string", "null"]},
            "bestEpoch": {"type": ["integer", "null"]},
            "lastError": {"type": ["string", "null"]},
            "step1MetricSaveYn": {"type": "boolean"},
            "step2MetricSaveYn": {"type": "boolean"},
            "progress": {
                "type": "object",
                "properties": {
                    "epochsDone": {"type": "integer"},
                    "totalEpoch": {"type": "integer"},
                    "percent": {"type": "number"},
                    "checkpointEpoch": {"type": ["integer", "null"]},
                },
            },
            "allowedCommands": {
                "type": "array",
                "description": "The commands the state rules accept now (the dashboard's "
                "buttons).",
                "items": {
                    "type": "string",
                    "enum": [c.api_name for c in Command],
                },
            },
        },
    }
    schemas["Job"] = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "attempt": {"type": "integer"},
            "jobType": {"type": "string", "enum": ["TRAIN", "EVAL"]},
            "statusCd": {"$ref": "#/components/schemas/JobStatus"},
            "statusName": {"type": "string"},
            "exitCode": {"type": ["integer", "null"]},
            "errorMessage": {"type": ["string", "null"]},
            "node": {"type": ["string", "null"]},
            "containerName": {"type": ["string", "null"]},
        },
    }
    schemas["ModelDetail"] = {
        "allOf": [
            {"$ref": "#/components/schemas/Model"},
            {
                "type": "object",
                "properties": {
                    "params": {"type": "object"},
                    "image": {"type": "string"},
                    "dataset": {"type": ["string", "null"]},
                    "resources": {"type": "object"},
                    "checkpointEpochs": {"type": "array", "items": {"type": "integer"}},
                    "metricSummary": {
                        "type": "object",
                        "description": "{split: {metric: {min, minEpoch, max, maxEpoch, last, "
                        "lastEpoch}}}; also on list items with withSummary=true",
                    },
                    "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                },
            },
        ]
    }
    schemas["CommandResult"] = {
        "allOf": [
            {"$ref": "#/components/schemas/Model"},
            {"type": "object", "properties": {"job": {"$ref": "#/components/schemas/Job"}}},
        ]
    }
    schemas["ModelPage"] = {
        "type": "object",
        "properties": {
            "content": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
            "totalElements": {"type": "integer"},
            "totalPages": {"type": "integer"},
        },
    }
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    }
    return schemas


def _list_parameters() -> list[dict[str, Any]]:
    schema = ListQuery.model_json_schema(by_alias=True)
    return [
        {"name": name, "in": "query", "required": False, "schema": prop}
        for name, prop in schema["properties"].items()
    ]


def build_openapi() -> dict[str, Any]:
    error_texts = {
        400: "invalid input",
        401: "missing or wrong bearer token",
        413: "request body larger than API_MAX_BODY_BYTES",
        415: "a write not sent as Content-Type: application/json",
        404: "unknown uuid",
        409: "the model's state forbids it",
        503: "a dependency is down",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trainyard API",
            "version": "0.1.0",
            "description": "Run and track model-training jobs. Envelope: "
            "{success, data} or {success: false, error: {code, message}}. Every write (POST) "
            "is sent with Content-Type: application/json, also a command with no body.",
        },
        "components": {
            "schemas": _json_schemas(),
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for status, text in error_texts.items()
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Needed for writes when API_TOKEN is set.",
                }
            },
        },
        "paths": {
            "/api/models": {
                "post": {
                    "tags": ["models"],
                    "summary": "Create a model",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/CreateModel"}
                            }
                        },
                    },
                    "responses": _responses("201", "#/components/schemas/ModelDetail", 400, 401),
                }
            },
            "/api/models/list": {
                "get": {
                    "tags": ["models"],
                    "summary": "List models, newest first",
                    "parameters": _list_parameters(),
                    "responses": _responses("200", "#/components/schemas/ModelPage", 400),
                }
            },
            "/api/models/{uuid}": {
                "get": {
                    "tags": ["models"],
                    "summary": "One model with its jobs",
                    "parameters": [_UUID],
                    "responses": _responses("200", "#/components/schemas/ModelDetail", 400, 404),
                }
            },
            # metric charts (app/api/metrics.py)
            "/api/models/{uuid}/metrics": {
                "get": {
                    "tags": ["metrics"],
                    "summary": "A split's metric curve: {split, columns, points [{epoch, step, "
                    "<metric>…}], total, downsampled, method, bestEpoch}. Long series are "
                    "thinned by min/max buckets (first, last and best epoch kept); NaN and "
                    "±inf come as the strings NaN / Infinity / -Infinity",
                    "parameters": [
                        _UUID,
                        {
                            "name": "split",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["train", "val"]},
                        },
                        {
                            "name": "maxPoints",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 10, "maximum": 100000},
                        },
                        {
                            "name": "metrics",
                            "in": "query",
                            "description": "comma-separated metric names (default: all)",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": _responses("200", None, 400, 404),
                }
            },
            "/api/models/{uuid}/metrics/summary": {
                "get": {
                    "tags": ["metrics"],
                    "summary": "Best epoch and, per split and metric, min / max / last with "
                    "their epochs",
                    "parameters": [_UUID],
                    "responses": _responses("200", None, 400, 404),
                }
            },
            "/api/models/{uuid}/metrics/test": {
                "get": {
                    "tags": ["metrics"],
                    "summary": "test.csv rows of every EVAL job: {columns, rows [{jobId, epoch, "
                    "step, <metric>…}]}",
                    "parameters": [_UUID],
                    "responses": _responses("200", None, 400, 404),
                }
            },
            # dashboard read-only views (app/api/results.py)
            "/api/models/{uuid}/logs": {
                "get": {
                    "tags": ["results"],
                    "summary": "Log tail of the current/last job (or ?jobId=); stored when a "
                    "container ends, so a running job has none yet (`note` says so)",
                    "parameters": [
                        _UUID,
                        {"name": "jobId", "in": "query", "schema": {"type": "integer"}},
                    ],
                    "responses": _responses("200", None, 400, 404),
                }
            },
            "/api/models/{uuid}/results": {
                "get": {
                    "tags": ["results"],
                    "summary": "Latest successful test: summary.json and test.csv rows",
                    "parameters": [_UUID],
                    "responses": _responses("200", None, 400, 404),
                }
            },
            "/api/models/{uuid}/results/download": {
                "get": {
                    "tags": ["results"],
                    "summary": "The latest successful test's results zip",
                    "parameters": [_UUID],
                    "responses": {
                        "200": {
                            "description": "results_epoch_<E>.zip",
                            "content": {"application/zip": {}},
                        },
                        "404": {"$ref": "#/components/responses/E404"},
                    },
                }
            },
            "/api/train/run/{uuid}": _command("Run (model READY)", _UUID),
            "/api/train/restart/{uuid}": _command("Restart from scratch (STOPPED/ERROR)", _UUID),
            "/api/train/resume/{uuid}": _command(
                "Resume from the latest checkpoint (STOPPED)", _UUID
            ),
            "/api/train/cancel/{uuid}": _command("Cancel training (step1 IN_PROGRESS)", _UUID),
            "/api/train/test/run/{epoch}/{uuid}": _command(
                "Test an epoch (step1 COMPLETED, step2 not IN_PROGRESS)", _EPOCH, _UUID
            ),
            "/api/train/test/cancel/{uuid}": _command("Cancel the test (step2 IN_PROGRESS)", _UUID),
            "/api/train/status/{uuid}": {
                "post": {
                    "tags": ["train"],
                    "summary": "Sync with the owning node; returns the model",
                    "parameters": [_UUID],
                    "responses": _responses("200", "#/components/schemas/Model", 400, 401, 404),
                }
            },
            "/api/train/create-tmp/{uuid}": {
                "post": {
                    "tags": ["datasets"],
                    "summary": "Write the model's train/val/test split lists",
                    "parameters": [_UUID],
                    "responses": _responses("200", None, 400, 401, 404, 409),
                }
            },
            "/api/train/counts/{uuid}": {
                "get": {
                    "tags": ["datasets"],
                    "summary": "Sample counts per split and label",
                    "parameters": [_UUID],
                    "responses": _responses("200", None, 400, 404, 409),
                }
            },
            "/api/health": {
                "get": {
                    "tags": ["ops"],
                    "summary": "Database and broker reachability",
                    "responses": _responses("200", None, 503),
                }
            },
            "/api/openapi.json": {
                "get": {
                    "tags": ["ops"],
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            "/api/docs": {
                "get": {
                    "tags": ["ops"],
                    "summary": "Browsable API docs",
                    "responses": {"200": {"description": "HTML"}},
                }
            },
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(build_openapi())


_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>trainyard API</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


@bp.get("/docs")
def docs_page() -> Response:
    return current_app.response_class(_DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/assets/<path:filename>")
def docs_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_path, filename)
