"""GET /api/openapi.json and a browsable page at /api/docs (Swagger UI from the
swagger-ui-bundle package).

The document is generated: every schema comes from the response types of app/api/responses.py
and the request models of app/api/schemas.py; OPERATIONS below is the one table of what each
route takes and answers. It is OpenAPI 3.0.3 because the bundled Swagger UI (4.x) renders 3.0
and not 3.1; `_to_openapi_30` turns pydantic's JSON Schema (2020-12) into 3.0's dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, send_from_directory
from pydantic import BaseModel, TypeAdapter
from swagger_ui_bundle import swagger_ui_path

from app.api import responses as r
from app.api.schemas import (
    CommandOptions,
    CompareQuery,
    CreateModel,
    DeliveryQuery,
    JobQuery,
    ListQuery,
    LogQuery,
    RetryUpdate,
    SeriesQuery,
)

bp = Blueprint("docs", __name__, url_prefix="/api")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # {uuid} and {epoch} are path parameters
    tag: str
    summary: str
    answer: Any  # the type of `data` in the success envelope (or the whole body: see _body)
    errors: tuple[int, ...] = (400, 404)
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    media_type: str = "application/json"
    # Other answers of the same route: another JSON answer type (chosen by the query; the
    # body is any one of them) and non-JSON media types ({media type: a _RAW kind}).
    also: tuple[Any, ...] = ()
    other_media: tuple[tuple[str, str], ...] = ()
    headers: tuple[dict[str, Any], ...] = ()  # request headers it reads


_COMMAND_ERRORS = (400, 404, 409)
_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "description": "With follow=1: the last event id received (a byte offset); the stream "
    "resumes just after it (EventSource sends it by itself when it reconnects).",
}
_OPTIONS: dict[str, Any] = {"body": CommandOptions, "body_required": False}  # optional body
_RAW = {  # answers that are not an envelope: the whole body is described as it is
    "html": {"type": "string"},
    "zip": {"type": "string", "format": "binary"},
    "document": {"type": "object"},
    "text": {"type": "string"},
    "events": {
        "type": "string",
        "description": "Server-sent events: per log line `id: <byte offset after it>` and "
        "`data: <the line, escaped>`; `: keep-alive` comments; `event: end` once the "
        "container ended and all was sent. At most LOG_FOLLOW_MAX_S per connection: "
        "reconnect with Last-Event-ID.",
    },
}

OPERATIONS = (
    Operation("post", "/api/models", "models", "Create a model (opt-in `retry`: docs/retry.md)",
              r.ModelDetail, (400,), 201,
              body=CreateModel),
    Operation("post", "/api/models/{uuid}/retry", "models",
              "Set or clear the model's retry policy (from its next ending on)", r.ModelDetail,
              body=RetryUpdate),
    Operation("get", "/api/models/list", "models",
              "List models: newest first, or sorted by a time or a metric's best value; "
              "filtered, searched (modelVer, memo), paged", r.ModelPage,
              (400,), query=ListQuery),
    Operation("get", "/api/models/compare", "models",
              "Compare models: parameters (which differ) and per-metric min / max / last",
              r.Comparison, (400, 404), query=CompareQuery),
    Operation("get", "/api/models/metric-names", "models",
              "Every metric name some model has, per split (for sort=best:… and metric=…)",
              r.MetricNames, ()),
    Operation("get", "/api/models/{uuid}", "models", "One model with its jobs", r.ModelDetail),
    Operation("get", "/api/models/{uuid}/metrics", "metrics",
              "A split's metric curve (NaN and ±inf come as the strings NaN / Infinity / "
              "-Infinity)", r.Chart, query=SeriesQuery),
    Operation("get", "/api/models/{uuid}/metrics/summary", "metrics",
              "Best epoch and, per split and metric, min / max / last with their epochs",
              r.MetricsOverview),
    Operation("get", "/api/models/{uuid}/metrics/test", "metrics",
              "test.csv rows of every EVAL job", r.EvalTestRows),
    Operation("get", "/api/models/{uuid}/logs", "results",
              "Log tail of the current/last job (or ?jobId=), stored when a container ends; "
              "?offset=N: the whole stored log from byte N (LogChunk); ?follow=1: the log "
              "live as server-sent events (Last-Event-ID resumes)", r.LogAnswer,
              (400, 404, 409), query=LogQuery, also=(r.LogChunk,),
              other_media=(("text/event-stream", "events"),), headers=(_LAST_EVENT_ID,)),
    Operation("get", "/api/models/{uuid}/logs/download", "results",
              "The whole stored log of the current/last job (or ?jobId=) as a text file "
              "(escaped as the stream is)", "text", (400, 404, 409),
              query=JobQuery, media_type="text/plain"),
    Operation("get", "/api/models/{uuid}/results", "results",
              "Latest successful test: summary.json and test.csv rows", r.Results),
    Operation("get", "/api/models/{uuid}/results/download", "results",
              "The latest successful test's results zip", "zip", (400, 404, 409),
              media_type="application/zip"),
    Operation("post", "/api/train/run/{uuid}", "train", "Run (model READY)", r.CommandAnswer,
              _COMMAND_ERRORS, **_OPTIONS),
    Operation("post", "/api/train/restart/{uuid}", "train",
              "Restart from scratch (STOPPED/ERROR)", r.CommandAnswer, _COMMAND_ERRORS,
              **_OPTIONS),
    Operation("post", "/api/train/resume/{uuid}", "train",
              "Resume from the latest checkpoint (STOPPED)", r.CommandAnswer, _COMMAND_ERRORS,
              **_OPTIONS),
    Operation("post", "/api/train/cancel/{uuid}", "train",
              "Cancel training (step1 IN_PROGRESS)", r.CommandAnswer, _COMMAND_ERRORS),
    Operation("post", "/api/train/test/run/{epoch}/{uuid}", "train",
              "Test an epoch (step1 COMPLETED, step2 not IN_PROGRESS)", r.CommandAnswer,
              _COMMAND_ERRORS, **_OPTIONS),
    Operation("post", "/api/train/test/cancel/{uuid}", "train",
              "Cancel the test (step2 IN_PROGRESS)", r.CommandAnswer, _COMMAND_ERRORS),
    Operation("post", "/api/train/status/{uuid}", "train",
              "Sync with the owning node; returns the model", r.SyncAnswer),
    Operation("post", "/api/train/create-tmp/{uuid}", "datasets",
              "Write the model's train/val/test split lists", r.CreatedSplits, (400, 404, 409)),
    Operation("get", "/api/train/counts/{uuid}", "datasets",
              "Sample counts per split and label", r.SplitCounts, (400, 404, 409)),
    Operation("get", "/api/nodes", "nodes",
              "Worker nodes: heartbeat, alive/lost (NODE_LOST_AFTER_S), capacity, GPUs with "
              "the job holding each, the jobs each holds, drain state", r.NodeList, ()),
    Operation("get", "/api/nodes/{name}", "nodes", "One node", r.NodeInfo),
    Operation("post", "/api/nodes/{name}/drain", "nodes",
              "Drain: the node takes no new job; the jobs it holds finish", r.NodeInfo),
    Operation("post", "/api/nodes/{name}/undrain", "nodes", "The node takes new jobs again",
              r.NodeInfo),
    Operation("get", "/api/webhooks/deliveries", "webhooks",
              "Webhook deliveries, newest first (?modelUuid=, ?status=PENDING|DELIVERED|DEAD): "
              "each event sent to each endpoint, its tries and the event itself; endpoints "
              "by scheme and host only (docs/webhooks.md)", r.WebhookDeliveryPage,
              query=DeliveryQuery),
    Operation("get", "/api/health", "ops", "Database and broker reachability",
              r.HealthAnswer, (503,)),
    Operation("get", "/api/openapi.json", "ops", "This document", "document", ()),
    Operation("get", "/api/docs", "ops", "Browsable API docs", "html", (),
              media_type="text/html"),
)

_ERROR_TEXTS = {
    400: "invalid input (the message names the field; IMAGE_NOT_FOUND: no live node has the image)",
    401: "missing or wrong bearer token",
    403: "without API_TOKEN the API answers only requests addressed to localhost",
    404: "unknown uuid (or job, results file or node)",
    409: "the model's state (or its dataset) forbids it, or no live node has its image",
    413: "request body larger than API_MAX_BODY_BYTES",
    415: "a write not sent as Content-Type: application/json",
    503: "PostgreSQL or the broker cannot be reached (Retry-After says when to try again)",
}
_PATH_PARAMETERS = {
    "uuid": {"type": "string", "format": "uuid"},
    "epoch": {"type": "integer", "minimum": 1},
    "name": {"type": "string", "minLength": 1, "maxLength": 128},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": "A repeated command with the same key returns the first answer.",
}


def _schema_name(answer: Any) -> str:
    return answer.__name__


def _envelope(answer: Any) -> Any:
    """The whole body's type: Ok[answer], or the answer itself where it is its own envelope."""
    return answer if answer is r.HealthAnswer else r.Ok[answer]


def _components() -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """Every schema, generated; and the $ref of each operation's body by (kind, name)."""
    inputs: list[tuple[Any, Any, Any]] = []
    for op in OPERATIONS:
        for answer in (op.answer, *op.also):
            if not isinstance(answer, str):
                inputs.append((("answer", _schema_name(answer)), "serialization",
                               TypeAdapter(_envelope(answer))))
        if op.body is not None:
            inputs.append((("body", op.body.__name__), "validation", TypeAdapter(op.body)))
    inputs.append((("answer", "Error"), "serialization", TypeAdapter(r.Error)))
    refs, defs = TypeAdapter.json_schemas(
        inputs, by_alias=True, ref_template="#/components/schemas/{model}"
    )
    schemas = {_readable(name): schema for name, schema in defs.get("$defs", {}).items()}
    return _renamed_refs(schemas), _renamed_refs({key: ref for (key, _), ref in refs.items()})


def _readable(name: str) -> str:
    """pydantic names Ok[ModelPage] `Ok_ModelPage_`: call it `OkModelPage`."""
    return re.sub(r"^Ok_(\w+)_$", r"Ok\1", name)


def _renamed_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _readable_ref(v) if k == "$ref" else _renamed_refs(v) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_renamed_refs(v) for v in node]
    return node


def _readable_ref(ref: str) -> str:
    prefix, _, name = ref.rpartition("/")
    return f"{prefix}/{_readable(name)}"


def _to_openapi_30(node: Any) -> Any:
    """JSON Schema 2020-12 (what pydantic writes, OpenAPI 3.1) → OpenAPI 3.0's dialect:
    `anyOf [X, null]` → X + nullable, `const` → one-value enum, numeric exclusive bounds →
    boolean ones, `examples` → `example`; titles dropped (the component names say it)."""
    if isinstance(node, list):
        return [_to_openapi_30(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "examples":
            out["example"] = value[0]
        elif key == "properties":  # keys here are field names, never keywords
            out[key] = {name: _to_openapi_30(v) for name, v in value.items()}
        else:
            out[key] = _to_openapi_30(value)
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        others = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        if len(others) == 1:
            out.update(others[0])
        else:
            out["anyOf"] = others
        out["nullable"] = True
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]  # 3.0.3: a nullable enum lists null
    if "$ref" in out and len(out) > 1:  # 3.0 ignores a $ref's siblings (nullable, default, …)
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMETERS[name]}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        schema = _to_openapi_30(op.query.model_json_schema(by_alias=True))
        for name, prop in schema["properties"].items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": {k: v for k, v in prop.items() if k != "description"},
                    **({"description": prop["description"]} if "description" in prop else {}),
                }
            )
    if op.answer is r.CommandAnswer:  # app/api/train.py reads it for commands only
        params.append(_IDEMPOTENCY)
    params.extend(op.headers)
    return params


def _operation(op: Operation, refs: dict[tuple[str, str], Any]) -> dict[str, Any]:
    success: dict[str, Any]
    if isinstance(op.answer, str):
        success = _RAW[op.answer]
    else:
        success = refs[("answer", _schema_name(op.answer))]
    if op.also:
        alternatives = [refs[("answer", _schema_name(answer))] for answer in op.also]
        success = {"oneOf": [success, *alternatives]}
    content = {op.media_type: {"schema": success}}
    for media_type, kind in op.other_media:
        content[media_type] = {"schema": _RAW[kind]}
    answers: dict[str, Any] = {str(op.status): {"description": "success", "content": content}}
    # The host guard (app/api/auth.py) and an outage (app/api/unavailable.py) answer any request.
    errors = set(op.errors) | {403, 503}
    if op.method == "post":  # app/api/auth.py answers these before any view runs
        errors |= {401, 413, 415}
    for status in sorted(errors):
        if status == 503 and op.answer is r.HealthAnswer:
            answers["503"] = {"description": _ERROR_TEXTS[503], "content": content}
        else:
            answers[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    out: dict[str, Any] = {
        "tags": [op.tag],
        "summary": op.summary,
        "operationId": f"{op.method}_{re.sub(r'[^A-Za-z0-9]+', '_', op.path).strip('_')}",
        "responses": answers,
    }
    if params := _parameters(op):
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": refs[("body", op.body.__name__)]}},
        }
    if op.method == "post":
        out["security"] = [{"bearer": []}, {}]
    return out


@cache
def build_openapi() -> dict[str, Any]:
    schemas, refs = _components()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "trainyard API",
            "version": "0.1.0",
            "description": "Run and track model-training jobs. Envelope: "
            "{success, data} or {success: false, error: {code, message}}. Every write (POST) "
            "is sent with Content-Type: application/json, also a command with no body.",
        },
        "components": {
            "schemas": _to_openapi_30(schemas),
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {"application/json": {"schema": refs[("answer", "Error")]}},
                }
                for status, text in _ERROR_TEXTS.items()
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Needed for writes when API_TOKEN is set.",
                }
            },
        },
        "paths": paths,
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
