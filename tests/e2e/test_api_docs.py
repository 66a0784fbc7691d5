"""/api/docs in headless Chromium: the bundled Swagger UI renders every operation of the
generated document and each of its schemas, with no "Unable to render this definition"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from app.api.docs import OPERATIONS, build_openapi
from tests.e2e.conftest import LiveServer


def test_swagger_ui_renders_every_operation_and_schema(
    page: Any, live_server: LiveServer, shot: Callable[..., Path]
) -> None:
    page.goto("/api/docs")
    page.locator(".opblock").first.wait_for()
    expect(page.locator(".opblock")).to_have_count(len(OPERATIONS))
    shown = {
        (
            block.locator(".opblock-summary-method").inner_text().strip().lower(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.locator(".opblock").all()
    }
    assert shown == {(op.method, op.path) for op in OPERATIONS}
    assert page.get_by_text("Unable to render").count() == 0
    assert page.locator(".errors-wrapper").count() == 0  # Swagger UI's parser errors

    # An operation opens with its parameters and its answer's schema.
    detail = page.locator(".opblock").filter(
        has=page.locator('.opblock-summary-path[data-path="/api/models/{uuid}"]')
    )
    detail.locator(".opblock-summary").click()
    expect(detail.locator(".parameters")).to_contain_text("uuid")
    expect(detail.locator(".responses-wrapper")).to_contain_text("404")

    # Every component schema is listed among the models.
    models = page.locator("section.models")
    if models.locator(".model-container").count() == 0:  # collapsed: open it
        models.locator("h4").click()
    names = set(build_openapi()["components"]["schemas"])
    expect(models.locator(".model-container")).to_have_count(len(names))
    shot(page, "api_docs")
