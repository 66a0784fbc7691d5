"""A small typed Python client over trainyard's HTTP API (what `trainyard models|run|logs|wait|
nodes …` use; docs/cli.md).

    from app.client import TrainyardClient
    api = TrainyardClient.from_env()            # TRAINYARD_URL, TRAINYARD_TOKEN, config file
    model = api.create_model({"modelNo": "G1", "modelVer": "v1", "params": {"total_epoch": 4}})
    api.run(model["uuid"])
    final = api.wait(model["uuid"])              # the model once nothing of it is IN_PROGRESS

Answers are the `data` of the API's envelope, typed with app/api/responses.py (the types the
OpenAPI document is generated from). An error answer raises `ApiError` with the API's code and
message; an unreachable server raises `ApiError` too (status 0).
"""

from __future__ import annotations

import os
import time
import tomllib
import uuid as uuid_lib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from app.api import responses
from app.domain.states import ModelStatus

DEFAULT_URL = "http://127.0.0.1:8000"
#: A followed log may be quiet for long (an epoch without output): no read timeout.
_STREAM_TIMEOUT = httpx.Timeout(30, read=None)
#: A stream that lasted this long before it closed without `end` ended normally.
_LONG_STREAM_S = 10.0


class ApiError(Exception):
    """The API answered an error (`status` its HTTP status), or could not be reached (0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status == 0 else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class FollowUnsupported(ApiError):
    """The server answered `?follow=1` without an event stream (a version before live logs)."""


class WaitTimeout(TimeoutError):
    def __init__(self, model: responses.ModelDetail, timeout_s: float) -> None:
        super().__init__(f"model {model['uuid']} still {model['statusCd']} after {timeout_s:g} s")
        self.model = model


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str | None


def config_path() -> Path:
    """$TRAINYARD_CONFIG, else $XDG_CONFIG_HOME/trainyard/config.toml (~/.config/…)."""
    explicit = os.environ.get("TRAINYARD_CONFIG", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "trainyard" / "config.toml"


def load_config(url: str | None = None, token: str | None = None) -> ClientConfig:
    """Each setting from the first that has it: the argument, the environment
    (TRAINYARD_URL; TRAINYARD_TOKEN, else the server's own API_TOKEN), the config file
    (`url = …`, `token = …`)."""
    path = config_path()
    stored: dict[str, Any] = {}
    if path.exists():
        try:
            stored = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ApiError(0, "BAD_CONFIG", f"cannot read {path}: {exc}") from None
    return ClientConfig(
        url=(url or os.environ.get("TRAINYARD_URL") or stored.get("url") or DEFAULT_URL).rstrip(
            "/"
        ),
        token=token
        or os.environ.get("TRAINYARD_TOKEN")
        or os.environ.get("API_TOKEN")
        or stored.get("token")
        or None,
    )


@dataclass(frozen=True)
class LogLine:
    offset: int  # byte offset of the line's end in the job's log: resume from here
    text: str


class TrainyardClient:
    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout_s, transport=transport
        )

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None) -> TrainyardClient:
        config = load_config(url, token)
        return cls(config.url, config.token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TrainyardClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if method == "POST":  # every write is JSON, also a command without a body
            kwargs.setdefault("json", {})
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, "UNREACHABLE", f"{self.url}: {exc}") from None
        return _data(response)

    # --- models ------------------------------------------------------------------------

    def create_model(self, body: dict[str, Any]) -> responses.ModelDetail:
        return cast(responses.ModelDetail, self._request("POST", "/api/models", json=body))

    def list_models(
        self,
        status: str = "",
        model_no: str = "",
        page: int = 0,
        size: int = 20,
        *,
        search: str = "",
        sort: str = "",
        direction: str = "",
        metric: str = "",
    ) -> responses.ModelPage:
        """`sort`: created, a step time or best:[train.|val.]<metric>[:min|:max]; `metric`
        adds each item's metricValue (docs/dashboard.md, "Sort, search and the metric column")."""
        query: dict[str, str | int] = {
            "status": status, "modelNo": model_no, "page": page, "size": size
        }  # fmt: skip
        optional = {"q": search, "sort": sort, "dir": direction, "metric": metric}
        query.update({key: value for key, value in optional.items() if value})
        return cast(responses.ModelPage, self._request("GET", "/api/models/list", params=query))

    def model(self, model_uuid: str) -> responses.ModelDetail:
        return cast(
            responses.ModelDetail, self._request("GET", f"/api/models/{_uuid(model_uuid)}")
        )

    def set_retry(
        self, model_uuid: str, policy: responses.RetryPolicy | None
    ) -> responses.ModelDetail:
        """The model's automatic retry policy (`{"max": N, "on": [causes]}`; None: none)."""
        path = f"/api/models/{_uuid(model_uuid)}/retry"
        return cast(responses.ModelDetail, self._request("POST", path, json={"retry": policy}))

    # --- commands (SPEC §4) ------------------------------------------------------------

    def _command(self, path: str, idempotency_key: str | None) -> responses.CommandAnswer:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return cast(responses.CommandAnswer, self._request("POST", path, headers=headers))

    def run(self, model_uuid: str, idempotency_key: str | None = None) -> responses.CommandAnswer:
        return self._command(f"/api/train/run/{_uuid(model_uuid)}", idempotency_key)

    def resume(
        self, model_uuid: str, idempotency_key: str | None = None
    ) -> responses.CommandAnswer:
        return self._command(f"/api/train/resume/{_uuid(model_uuid)}", idempotency_key)

    def restart(
        self, model_uuid: str, idempotency_key: str | None = None
    ) -> responses.CommandAnswer:
        return self._command(f"/api/train/restart/{_uuid(model_uuid)}", idempotency_key)

    def cancel(
        self, model_uuid: str, idempotency_key: str | None = None
    ) -> responses.CommandAnswer:
        return self._command(f"/api/train/cancel/{_uuid(model_uuid)}", idempotency_key)

    def test(
        self, model_uuid: str, epoch: int, idempotency_key: str | None = None
    ) -> responses.CommandAnswer:
        return self._command(f"/api/train/test/run/{epoch}/{_uuid(model_uuid)}", idempotency_key)

    def test_cancel(
        self, model_uuid: str, idempotency_key: str | None = None
    ) -> responses.CommandAnswer:
        return self._command(f"/api/train/test/cancel/{_uuid(model_uuid)}", idempotency_key)

    # --- logs ----------------------------------------------------------------------------

    def logs(self, model_uuid: str, job_id: int | None = None) -> responses.LogAnswer:
        query = {"jobId": job_id} if job_id is not None else None
        return cast(
            responses.LogAnswer,
            self._request("GET", f"/api/models/{_uuid(model_uuid)}/logs", params=query),
        )

    def follow_logs(
        self, model_uuid: str, offset: int | None = None, reconnects: int = 20
    ) -> Iterator[LogLine]:
        """The job's log lines as they are written, until the server's `event: end`
        (`GET …/logs?follow=1`, server-sent events: `id: <byte offset>`, `data: <line>`).
        A dropped connection is resumed from the last offset (`Last-Event-ID`); `reconnects`
        bounds the reconnects in a row that bring no new line."""
        path = f"/api/models/{_uuid(model_uuid)}/logs"
        last = offset
        dropped = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            params: dict[str, Any] = {"follow": 1}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
                params["offset"] = last
            opened = time.monotonic()
            try:
                with self.http.stream(
                    "GET", path, params=params, headers=headers, timeout=_STREAM_TIMEOUT
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        _data(response)
                    if not response.headers.get("content-type", "").startswith(
                        "text/event-stream"
                    ):
                        raise FollowUnsupported(
                            response.status_code,
                            "FOLLOW_UNSUPPORTED",
                            "this server does not stream logs (no ?follow=1)",
                        )
                    for event in _events(response.iter_lines()):
                        if event.name == "end":
                            return
                        if event.id is not None:
                            last = event.id
                            dropped = 0  # progress: only failures in a row count
                        if event.name == "message" and event.data is not None:
                            yield LogLine(last or 0, event.data)
                    # Ended without `end`: the server bounds how long one stream lasts
                    # (a quiet job sends only keep-alives), so a long one is no failure.
                    lasted_s = time.monotonic() - opened
                    dropped = 0 if lasted_s >= _LONG_STREAM_S else dropped + 1
            except httpx.HTTPError as exc:
                dropped += 1
                if dropped > reconnects:
                    raise ApiError(0, "UNREACHABLE", f"{self.url}: {exc}") from None
            if dropped > reconnects:
                raise ApiError(0, "STREAM_ENDED", "the log stream kept ending without `end`")
            time.sleep(min(5.0, 0.5 * dropped) if dropped else 0.2)

    # --- waiting -----------------------------------------------------------------------

    def wait(
        self, model_uuid: str, timeout_s: float | None = None, interval_s: float = 2.0
    ) -> responses.ModelDetail:
        """The model once nothing of it runs (its status is not IN_PROGRESS)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            model = self.model(model_uuid)
            if model["statusCd"] != ModelStatus.IN_PROGRESS:
                return model
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(model, timeout_s or 0)
            time.sleep(interval_s)

    # --- nodes ---------------------------------------------------------------------------

    def nodes(self) -> responses.NodeList:
        return cast(responses.NodeList, self._request("GET", "/api/nodes"))

    def node(self, name: str) -> responses.NodeInfo:
        return cast(responses.NodeInfo, self._request("GET", f"/api/nodes/{_segment(name)}"))

    def drain(self, name: str) -> responses.NodeInfo:
        return cast(
            responses.NodeInfo, self._request("POST", f"/api/nodes/{_segment(name)}/drain")
        )

    def undrain(self, name: str) -> responses.NodeInfo:
        return cast(
            responses.NodeInfo, self._request("POST", f"/api/nodes/{_segment(name)}/undrain")
        )

    # --- webhooks (docs/webhooks.md) -----------------------------------------------------

    def webhook_deliveries(
        self, model_uuid: str | None = None, status: str = "", page: int = 0, size: int = 20
    ) -> responses.WebhookDeliveryPage:
        """Webhook deliveries, newest first: of one model, of one status (PENDING,
        DELIVERED, DEAD), or all."""
        query: dict[str, Any] = {"status": status, "page": page, "size": size}
        if model_uuid is not None:
            query["modelUuid"] = _uuid(model_uuid)
        return cast(
            responses.WebhookDeliveryPage,
            self._request("GET", "/api/webhooks/deliveries", params=query),
        )


@dataclass
class _Event:
    name: str = "message"
    id: int | None = None
    data: str | None = None


def _events(lines: Iterator[str]) -> Iterator[_Event]:
    """Server-sent events (the WHATWG format) from a stream's lines."""
    event = _Event()
    data: list[str] = []
    for line in lines:
        if line == "":
            if data or event.name != "message":
                event.data = "\n".join(data) if data else None
                yield event
            event, data = _Event(), []
            continue
        if line.startswith(":"):  # a comment: keep-alive
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event.name = value
        elif field == "id" and value.isdigit():
            event.id = int(value)
    if data or event.name != "message":
        event.data = "\n".join(data) if data else None
        yield event


def _data(response: httpx.Response) -> Any:
    """The envelope's data, or ApiError with the API's code and message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code < 400 and isinstance(body, dict) and body.get("success"):
        return body.get("data")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raise ApiError(response.status_code, str(error.get("code")), str(error.get("message")))
    text = response.text.strip()[:200] or response.reason_phrase
    raise ApiError(response.status_code, "HTTP_ERROR", text)


def _uuid(value: str) -> str:
    try:
        return str(uuid_lib.UUID(value))
    except ValueError:
        raise ApiError(0, "INVALID_UUID", f"{value!r} is not a model uuid") from None


def _segment(value: str) -> str:
    """A node name as one path segment (percent-encoded)."""
    from urllib.parse import quote

    return quote(value, safe="")
