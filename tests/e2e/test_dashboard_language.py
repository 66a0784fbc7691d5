"""The dashboard in English (docs/dashboard.md, "Language"): the header's switch, ?lang=en, the
choice kept over a reload, and back to Korean. No containers: two models, one put straight into
the database as a failed training leaves it. Their names and memos are ASCII, so every Korean
character left on an English page would be the page's own (but the switch's own name, 한국어).
"""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from app.domain.timefmt import utcnow
from tests.e2e.axe import assert_no_serious_violations
from tests.e2e.conftest import buttons, row
from tests.e2e.test_dashboard_table import _force

HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]+")


def _korean_on_page(page) -> set[str]:
    return set(HANGUL.findall(page.evaluate("document.body.innerText")))


def test_english_throughout_kept_over_a_reload_and_back_to_korean(
    page, live_server, db, shot
) -> None:
    ready = live_server.create_model(modelVer="v-lang-ready", memo="waiting model")
    failed = live_server.create_model(modelVer="v-lang-failed", memo="failed model")
    now = utcnow()
    _force(
        db,
        failed["uuid"],
        status_cd="ERROR",
        step1_state="ERROR",
        last_error="CONTAINER_EXIT_3",
        step1_strt_dttm=now - timedelta(seconds=200),
        step1_end_dttm=now,
    )

    page.goto("/?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#total-count")).to_have_text("2 models")
    heads = [h.strip() for h in page.locator("#model-table thead th").all_inner_texts()]
    assert heads[1:8] == [
        "Model no.", "Version", "Best metric", "Overall status",
        "Training (Step1)", "Test (Step2)", "Training time (Asia/Seoul)",
    ], heads  # fmt: skip
    expect(row(page, ready["uuid"]).locator(".cell-status .badge")).to_have_text("⏸️ Ready")
    assert buttons(page, ready["uuid"]) == ["🚀 Train"]
    failed_row = row(page, failed["uuid"])
    expect(failed_row.locator(".err-title")).to_have_text("❌ Training code error (exit code 3)")
    expect(failed_row.locator(".err-action")).to_have_text("[Restart]")
    # the API's duration ("3분 20초") drawn in English
    expect(failed_row.locator(".cell-step1 .muted")).to_have_text("(3m 20s)")
    assert _korean_on_page(page) == {"한국어"}
    # the whole page, header's switch included (lang on each button, a labelled group)
    assert_no_serious_violations(page, None, "the table in English")
    shot(page, "dashboard-english")

    failed_row.locator(f"a.model-link[href=\"#/models/{failed['uuid']}\"]").click()
    panel = page.locator("#panel")
    expect(panel.locator("h3").first).to_have_text("Progress")
    expect(panel.locator("[data-sec=info] dt").first).to_have_text("UUID")
    expect(panel.locator("[data-sec=info]")).to_contain_text("Training type")
    expect(panel.locator(".step-card").first).to_contain_text("Took: 3m 20s")
    expect(panel.locator("[data-sec=curves] .note")).to_have_text("No metrics yet.")
    assert _korean_on_page(page) == {"한국어"}
    shot(page, "dashboard-english-model-view")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()

    # the choice is kept (localStorage): a plain address stays English
    page.goto("/")
    expect(page.locator("#create-btn")).to_have_text("➕ New model")
    expect(page.get_by_role("group", name="Language")).to_be_visible()
    expect(page.locator("[data-lang=en]")).to_have_attribute("aria-pressed", "true")
    page.goto("/nodes")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#refresh-btn")).to_have_text("⟳ Refresh")

    page.locator("[data-lang=ko]").click()
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    expect(page.locator("#refresh-btn")).to_have_text("⟳ 새로 고침")
    page.goto("/")
    expect(page.locator("#model-table thead th").nth(1)).to_have_text("모델 번호")
    expect(row(page, ready["uuid"]).locator(".cell-status .badge")).to_have_text("⏸️ 대기")
    expect(failed_row.locator(".cell-step1 .muted")).to_have_text("(3분 20초)")
    assert buttons(page, ready["uuid"]) == ["🚀 학습 실행"]
