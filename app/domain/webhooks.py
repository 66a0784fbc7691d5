"""Webhook events (docs/webhooks.md): what one status change says, how its body is written
and signed. Pure: the status write builds the event, a worker renders and signs it.

Signature: `X-Trainyard-Signature: sha256=<hex>`, the HMAC-SHA256 (key WEBHOOK_SECRET) of
`<X-Trainyard-Timestamp>.<raw body>`. The timestamp is signed with the body so that a
captured request cannot be replayed later with a fresh timestamp (as Stripe and Slack sign).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

FORMATS = ("json", "slack")  # WEBHOOK_FORMAT and a model's webhookFormat
EVENT_TYPE = "model.status_changed"
EVENT_ID_HEADER = "X-Trainyard-Event-Id"
TIMESTAMP_HEADER = "X-Trainyard-Timestamp"
SIGNATURE_HEADER = "X-Trainyard-Signature"
MAX_URL_CHARS = 2000
MESSAGE_LIMIT = 500  # characters of last_error an event carries (it may quote a job's log)

_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook endpoint, or None: http(s) with a host, nothing else
    (no file:, no javascript:, no spaces or control characters)."""
    if len(url) > MAX_URL_CHARS:
        return f"a URL of at most {MAX_URL_CHARS} characters, got {len(url)}"
    if not url.isprintable() or any(c.isspace() for c in url):
        return "a URL without spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError on a port out of range)
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"an http:// or https:// URL, got {got}"
    if not host:
        return "an http(s) URL with a host name"
    return None


def redacted(url: str) -> str:
    """What the API shows of an endpoint: scheme, host and port. The path and query may be a
    secret (a Slack webhook URL is its own password), and so may user:password@."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


@dataclass(frozen=True)
class JobTransition:
    job_id: int
    job_type: str  # TRAIN (step1) or EVAL (step2)
    attempt: int
    old: str | None  # None: created by this write
    new: str
    exit_code: int | None = None
    node: str | None = None


@dataclass(frozen=True)
class StatusChange:
    """One accepted status write: the model's states before and after, the job it ended,
    started or created, and what caused it."""

    model_uuid: str
    model_no: str
    model_ver: str
    status: tuple[str, str]  # (old, new) of status_cd
    step1: tuple[str, str]
    step2: tuple[str, str]
    job: JobTransition | None
    new_job: JobTransition | None  # a second job, when one write ended one and created one
    cause_kind: str  # "command", "observation" or "retry" (app/domain/retry.py)
    cause_name: str  # the command ("run", "test cancel") or the observed event ("failed")
    last_error: str | None  # the model's last_error after the write

    @property
    def changed(self) -> bool:
        jobs_moved = any(j is not None and j.old != j.new for j in (self.job, self.new_job))
        steps_moved = any(old != new for old, new in (self.status, self.step1, self.step2))
        return jobs_moved or steps_moved


def error_code(last_error: str | None) -> str | None:
    """`OOM_KILLED` of "OOM_KILLED: …", `IMAGE_NOT_FOUND` of "IMAGE_NOT_FOUND: image …"."""
    if not last_error:
        return None
    match = _CODE.match(last_error)
    return match.group() if match else None


def _transition(pair: tuple[str, str]) -> dict[str, str]:
    return {"old": pair[0], "new": pair[1]}


def _job(job: JobTransition | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {
        "id": job.job_id,
        "type": job.job_type,
        "attempt": job.attempt,
        "status": {"old": job.old, "new": job.new},
        "exitCode": job.exit_code,
        "node": job.node,
    }


def build_event(
    change: StatusChange, event_id: str, sequence: int, occurred_at: datetime, public_url: str
) -> dict[str, Any]:
    """The JSON event (docs/webhooks.md, "Payload"); `sequence` orders one model's events."""
    base = public_url.rstrip("/")
    message = change.last_error
    if message is not None and len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "…"
    return {
        "id": event_id,
        "type": EVENT_TYPE,
        "occurredAt": occurred_at.isoformat(),
        "sequence": sequence,
        "model": {
            "uuid": change.model_uuid,
            "modelNo": change.model_no,
            "modelVer": change.model_ver,
            "status": _transition(change.status),
            "step1": _transition(change.step1),
            "step2": _transition(change.step2),
        },
        "job": _job(change.job),
        "newJob": _job(change.new_job),
        "cause": {
            "kind": change.cause_kind,
            "name": change.cause_name,
            "code": error_code(change.last_error),
            "message": message,
        },
        "links": {
            "api": f"{base}/api/models/{change.model_uuid}",
            "dashboard": f"{base}/#/models/{change.model_uuid}",
        },
    }


def _slack_escaped(text: str) -> str:
    """Slack reads <…> as links and mentions (<!channel>): data is quoted, never obeyed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(event: dict[str, Any]) -> str:
    """One line a person reads in a channel, with a link to the model on the dashboard."""
    model = event["model"]
    name = _slack_escaped(f"{model['modelNo']} {model['modelVer']}")
    status = model["status"]
    line = f"trainyard: model {name} {status['old']} → {status['new']}"
    job = event.get("job")
    if job is not None:
        old = job["status"]["old"] or "new"
        line += f"; {job['type']} job {job['id']} (attempt {job['attempt']}) {old} → "
        line += job["status"]["new"]
    cause = event["cause"]
    if cause.get("message"):
        line += f" ({_slack_escaped(cause['message'])})"
    link = event["links"]["dashboard"]
    return f"{line} <{link}|open>"


def render_body(kind: str, event: dict[str, Any]) -> bytes:
    """The raw bytes sent (and signed): the event itself, or Slack's {"text": …}."""
    document = {"text": slack_text(event)} if kind == "slack" else event
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>")."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """What a receiver does (docs/webhooks.md has it standalone): constant-time compare."""
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def headers(event_id: str, body: bytes, secret: str | None, timestamp: str) -> dict[str, str]:
    out = {
        "Content-Type": "application/json",
        "User-Agent": "trainyard-webhooks/1",
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: timestamp,
    }
    if secret:
        out[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return out
