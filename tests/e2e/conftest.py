"""End-to-end fixtures: the real API served over HTTP, real workers and containers (the
`workers` fixture of tests/workers), and the dashboard driven in headless Chromium.

Chromium is Debian's (`apt-get install chromium fonts-noto-cjk fonts-noto-color-emoji`), driven
through the `playwright` Python package; no browser is ever downloaded. Every test saves
screenshots under artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.config import Settings
from app.factory import create_app

# The workers fixture (real `python -m workers.main` processes) and the image it needs.
from tests.workers.conftest import trainer_image, wait_until, workers  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Node name of the e2e workers: their containers are theirs alone (orphan sweeps are per node).
NODE = "e2e-node"
#: Every write carries this, as the dashboard's do (the API answers 415 without it).
JSON_WRITES = {"Content-Type": "application/json"}


@dataclass
class LiveServer:
    url: str
    app: Flask
    http: httpx.Client

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API over HTTP; the envelope's data, or an AssertionError with the error."""
        response = self.http.request(method, path, **kwargs)
        body = response.json()
        assert response.status_code < 400 and body["success"], (response.status_code, body)
        return body["data"]

    def model(self, uid: str) -> dict[str, Any]:
        return self.api("GET", f"/api/models/{uid}")

    def create_model(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "modelNo": "G1",
            "modelVer": "v1.0.0",
            "trainType": "GENERAL",
            "memo": "e2e 테스트",
            "params": {"total_epoch": 4, "val_interval": 2},
        }
        body.update(overrides)
        return self.api("POST", "/api/models", json=body)

    def wait_for(self, uid: str, field: str, value: str, timeout_s: float = 90) -> dict[str, Any]:
        return wait_until(
            lambda: (m := self.model(uid))[field] == value and m,
            timeout_s,
            f"{field} == {value} (model {uid})",
            every_s=0.3,
        )


@pytest.fixture
def live_server(settings: Settings, db, broker) -> Iterator[LiveServer]:
    """`create_app()` on the test database and broker, served by werkzeug in a thread."""
    settings.output_root.mkdir(parents=True, exist_ok=True)
    settings.dataset_root.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-http", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    with httpx.Client(base_url=url, timeout=30, headers=JSON_WRITES) as http:
        yield LiveServer(url=url, app=app, http=http)
    server.shutdown()
    thread.join(10)
    app.extensions["trainyard"].dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install chromium fonts-noto-cjk "
            "fonts-noto-color-emoji (or set CHROMIUM_PATH)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


#: Console noise that is expected: the browser logs every non-2xx fetch (a 409 we provoke,
#: a 404 for "no metrics yet").
_EXPECTED_CONSOLE = ("Failed to load resource",)


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(
        viewport={"width": 1440, "height": 960},
        locale="ko-KR",
        timezone_id="Asia/Seoul",
        accept_downloads=True,
        base_url=live_server.url,
    )
    context.set_default_timeout(15_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not msg.text.startswith(_EXPECTED_CONSOLE)
            else None
        ),
    )
    yield tab
    context.close()
    assert not problems, "the page reported errors:\n" + "\n".join(problems)


@pytest.fixture
def shot() -> Callable[..., Path]:
    """shot(page, "name"): a screenshot at artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(tab: Any, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        time.sleep(0.3)  # let the last render and fonts settle
        tab.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def node(workers, trainer_image: str) -> Any:  # noqa: F811
    """One worker node with short intervals (see tests/workers/conftest.py)."""
    return workers(NODE)


def row(tab: Any, uid: str) -> Any:
    """The model's group of rows in the table (a <tbody> per model)."""
    return tab.locator(f'tbody[data-uuid="{uid}"]')


def buttons(tab: Any, uid: str) -> list[str]:
    """The labels of the model's action buttons and links in the table, in order."""
    # attached, not visible: a row that offers no button has an empty (zero-size) actions cell
    row(tab, uid).locator("[data-actions]").wait_for(state="attached")
    return [t.strip() for t in row(tab, uid).locator("[data-actions] .btn").all_inner_texts()]
