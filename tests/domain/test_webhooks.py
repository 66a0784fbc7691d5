"""Webhook events, pure: URL checks, the payload, Slack's text, the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from app.api.responses import WebhookEventBody
from app.domain import webhooks as w

UUID = "6f1c1b7e-7d1a-4a55-9d6a-0d7e1c2b3a4f"


def _change(**overrides: object) -> w.StatusChange:
    fields: dict[str, object] = {
        "model_uuid": UUID,
        "model_no": "G1",
        "model_ver": "v1",
        "status": ("IN_PROGRESS", "ERROR"),
        "step1": ("IN_PROGRESS", "ERROR"),
        "step2": ("READY", "READY"),
        "job": w.JobTransition(7, "TRAIN", 2, "RUNNING", "FAILED", exit_code=137, node="n1"),
        "new_job": None,
        "cause_kind": "observation",
        "cause_name": "failed",
        "last_error": "OOM_KILLED: the container hit its memory limit",
    }
    fields.update(overrides)
    return w.StatusChange(**fields)  # type: ignore[arg-type]


def _event(change: w.StatusChange | None = None) -> dict[str, object]:
    at = datetime(2026, 11, 30, 3, 4, 5, tzinfo=UTC)
    return w.build_event(change or _change(), "e-1", 42, at, "https://ty.example.com/")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/x?y=1", None),
        ("http://127.0.0.1:9000/hook", None),
        ("http://[::1]:9000/", None),
        ("ftp://example.com/", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("javascript:alert(1)", "scheme 'javascript'"),
        ("example.com/hook", "no scheme"),
        ("https:///nohost", "with a host name"),
        ("https://exa mple.com/", "without spaces"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://example.com/" + "a" * 2000, "at most 2000"),
    ],
)
def test_only_http_urls_with_a_host_are_endpoints(url: str, problem: str | None) -> None:
    found = w.url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_the_api_shows_scheme_and_host_never_the_path_or_a_password() -> None:
    assert w.redacted("https://hooks.slack.com/services/T0/B0/SECRET") == "https://hooks.slack.com"
    assert w.redacted("http://user:pw@10.0.0.5:8080/p?token=t") == "http://10.0.0.5:8080"
    assert w.redacted("http://[::1]:9/x") == "http://[::1]:9"


def test_the_event_names_model_job_states_cause_and_links() -> None:
    event = _event()
    assert event["id"] == "e-1" and event["sequence"] == 42
    assert event["occurredAt"] == "2026-11-30T03:04:05+00:00"
    assert event["model"] == {
        "uuid": UUID,
        "modelNo": "G1",
        "modelVer": "v1",
        "status": {"old": "IN_PROGRESS", "new": "ERROR"},
        "step1": {"old": "IN_PROGRESS", "new": "ERROR"},
        "step2": {"old": "READY", "new": "READY"},
    }
    assert event["job"] == {
        "id": 7,
        "type": "TRAIN",
        "attempt": 2,
        "status": {"old": "RUNNING", "new": "FAILED"},
        "exitCode": 137,
        "node": "n1",
    }
    assert event["newJob"] is None
    assert event["cause"] == {
        "kind": "observation",
        "name": "failed",
        "code": "OOM_KILLED",
        "message": "OOM_KILLED: the container hit its memory limit",
    }
    assert event["links"] == {
        "api": f"https://ty.example.com/api/models/{UUID}",
        "dashboard": f"https://ty.example.com/#/models/{UUID}",
    }
    # The type the OpenAPI document shows is the shape built here, key for key.
    TypeAdapter(WebhookEventBody).validate_python(event, strict=True)


def test_a_long_error_is_cut_and_a_created_job_has_no_old_state() -> None:
    created = w.JobTransition(8, "EVAL", 1, None, "QUEUED")
    event = _event(_change(job=created, last_error="X" * 2000, cause_kind="command"))
    assert event["job"]["status"] == {"old": None, "new": "QUEUED"}  # type: ignore[index]
    message = event["cause"]["message"]  # type: ignore[index]
    assert len(message) == w.MESSAGE_LIMIT + 1 and message.endswith("…")
    TypeAdapter(WebhookEventBody).validate_python(event, strict=True)


def test_a_change_is_a_change_of_some_state() -> None:
    same = ("IN_PROGRESS", "IN_PROGRESS")
    assert not _change(status=same, step1=same, step2=same, job=None).changed
    started = w.JobTransition(7, "TRAIN", 1, "QUEUED", "RUNNING")
    assert _change(status=same, step1=same, step2=same, job=started).changed
    assert _change(job=None).changed


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("OOM_KILLED", "OOM_KILLED"),
        ("IMAGE_NOT_FOUND: image 'x' is on no live node", "IMAGE_NOT_FOUND"),
        ("CONTAINER_EXIT_3", "CONTAINER_EXIT_3"),
        ("something else", None),
        (None, None),
    ],
)
def test_the_cause_code_is_the_errors_leading_code(text: str | None, code: str | None) -> None:
    assert w.error_code(text) == code


def test_slack_text_quotes_data_and_links_the_dashboard() -> None:
    event = _event(_change(model_ver="<!channel> & co", last_error="<https://evil|click>"))
    body = json.loads(w.render_body("slack", event))
    assert list(body) == ["text"]
    text = body["text"]
    assert "&lt;!channel&gt; &amp; co" in text and "<!channel>" not in text
    assert "&lt;https://evil|click&gt;" in text
    assert "IN_PROGRESS → ERROR" in text and "TRAIN job 7 (attempt 2) RUNNING → FAILED" in text
    assert text.endswith(f"<https://ty.example.com/#/models/{UUID}|open>")


def test_the_json_body_is_the_event_itself() -> None:
    event = _event()
    assert json.loads(w.render_body("json", event)) == event


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = w.render_body("json", _event())
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert w.signature("s3cret", "1700000000", body) == f"sha256={expected}"
    header = w.signature("s3cret", "1700000000", body)
    assert w.verify("s3cret", "1700000000", body, header)
    assert not w.verify("other", "1700000000", body, header)
    assert not w.verify("s3cret", "1700000001", body, header)  # the timestamp is signed too
    assert not w.verify("s3cret", "1700000000", body + b" ", header)


def test_headers_carry_the_event_id_and_sign_only_with_a_secret() -> None:
    body = b"{}"
    signed = w.headers("e-1", body, "k", "17")
    assert signed[w.EVENT_ID_HEADER] == "e-1" and signed[w.TIMESTAMP_HEADER] == "17"
    assert signed[w.SIGNATURE_HEADER] == w.signature("k", "17", body)
    assert w.SIGNATURE_HEADER not in w.headers("e-1", body, None, "17")
