"""The dashboard on a phone (390×844) and for the keyboard and screen readers (issue #15, 3 and
4), and 학습 시간 across a resumed training's attempts. No containers: states, jobs and metrics are
put straight into the database, as a finished worker would leave them.

axe-core (tests/e2e/axe.py) checks the table, the model view and the dialogs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select, update

from app.db.models import Job, Model
from app.db.session import transaction
from app.domain.timefmt import utcnow
from app.metrics import ingest_train_outputs
from app.services.status_writes import lock_model_by_id
from tests.e2e.axe import assert_no_serious_violations
from tests.e2e.conftest import row

PHONE = {"width": 390, "height": 844}

# name: (model status, step1, step2, other columns, the buttons the state offers)
_STATES: dict[str, tuple[str, str, str, dict[str, Any], list[str]]] = {
    "ready": ("READY", "READY", "READY", {}, ["🚀 학습 실행"]),
    "training": (
        "IN_PROGRESS", "IN_PROGRESS", "READY", {"epochs_done": 3, "checkpoint_epoch": 2},
        ["⏹️ 학습 취소"],
    ),
    "trained": (
        "COMPLETED", "COMPLETED", "READY",
        {"epochs_done": 4, "checkpoint_epoch": 4, "best_epoch": 4},
        ["🧪 테스트 실행"],
    ),
    "testing": (
        "IN_PROGRESS", "COMPLETED", "IN_PROGRESS",
        {"epochs_done": 4, "checkpoint_epoch": 4, "best_epoch": 4},
        ["⏹️ 테스트 취소"],
    ),
    "done": (
        "COMPLETED", "COMPLETED", "COMPLETED",
        {"epochs_done": 4, "checkpoint_epoch": 4, "best_epoch": 4},
        ["🧪 테스트 재실행", "📊 결과 보기", "⬇️ 다운로드"],
    ),
    "stopped": (
        "STOPPED", "STOPPED", "READY",
        {"epochs_done": 2, "checkpoint_epoch": 2, "last_error": "CANCELED_BY_USER"},
        ["🔄 재실행", "▶️ 이어하기"],
    ),
    "error": (
        "ERROR", "ERROR", "READY",
        {
            "epochs_done": 1,
            # a long code with no space in it: it must wrap inside the card, not widen it
            "last_error": "OUTPUT_INCOMPLETE: metrics-parse-error: train.csv line 3: "
            "could-not-convert-string-to-float-" + "x" * 120,
        },
        ["🔄 재실행"],
    ),
}


def _seed_each_state(live_server, db) -> dict[str, str]:
    """One model per state of _STATES (a long version and memo too); name -> uuid."""
    uids = {}
    for i, (name, (status, step1, step2, extra, _)) in enumerate(_STATES.items()):
        created = live_server.create_model(
            modelNo=f"G{i % 4 + 1}",
            modelVer=f"v1.0.{i}-{name}-with-a-rather-long-version-name",
            memo="휴대폰에서 보는 카드: 긴 메모도 카드 너비 안에서 줄바꿈되어야 합니다",
        )
        with db.begin() as session:
            session.execute(
                update(Model)
                .where(Model.uuid == uuid.UUID(created["uuid"]))
                .values(status_cd=status, step1_state=step1, step2_state=step2, **extra)
            )
        uids[name] = created["uuid"]
    return uids


def _on_screen(page, locator) -> bool:
    """Scrolled to (the page, vertically only), is the element wholly on the screen? Nothing
    is scrolled sideways, so an element right of the screen's edge fails."""
    return locator.evaluate(
        """el => {
          window.scrollTo(0, window.scrollY + el.getBoundingClientRect().top - 60);
          const r = el.getBoundingClientRect();
          return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth
            && r.top >= 0 && r.bottom <= window.innerHeight; }"""
    )


def _within_width(page, locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]


def _no_sideways_scrolling(page) -> None:
    """Neither the page nor the table's box is wider than the screen."""
    widths = page.evaluate(
        """[document.documentElement.scrollWidth, document.body.scrollWidth,
            document.querySelector('.table-wrap').scrollWidth, window.innerWidth]"""
    )
    assert max(widths[:3]) <= widths[3], f"wider than the screen: {widths}"


def _add_metrics(db, uid: str, folder: Path) -> None:
    """A finished training's train.csv and val.csv, stored as the completion worker does."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(
        "epoch,loss,accuracy\n1,1.2,0.40\n2,0.9,0.55\n3,0.7,0.66\n4,0.6,0.71\n"
    )
    (folder / "val.csv").write_text("epoch,val_loss,val_accuracy\n2,1.0,0.50\n4,0.8,0.62\n")
    with transaction(db) as session:
        model_id = session.scalar(select(Model.id).where(Model.uuid == uuid.UUID(uid)))
        model = lock_model_by_id(session, model_id)
        assert model is not None
        job = Job(
            model_id=model.id, job_type="TRAIN", attempt=1, status_cd="SUCCESS",
            params=dict(model.params), image=model.image,
        )
        session.add(job)
        session.flush()
        with session.begin_nested():
            ingest_train_outputs(session, model, job, folder)


def test_phone_cards_show_every_states_next_action(page, live_server, db, tmp_path, shot) -> None:
    uids = _seed_each_state(live_server, db)
    _add_metrics(db, uids["done"], tmp_path / "train")
    page.set_viewport_size(PHONE)
    page.goto("/")
    expect(page.locator("tbody[data-uuid]")).to_have_count(len(_STATES))

    _no_sideways_scrolling(page)
    for name, (*_, labels) in _STATES.items():
        actions = row(page, uids[name]).locator("[data-actions] .btn")
        expect(actions).to_have_count(len(labels))
        assert [t.strip() for t in actions.all_inner_texts()] == labels, name
        for i in range(len(labels)):
            assert _on_screen(page, actions.nth(i)), f"{name}: {labels[i]} off-screen"
        # the state and the progress are in the same card, on screen too
        assert _on_screen(page, row(page, uids[name]).locator(".cell-status .badge")), name
    assert _on_screen(page, row(page, uids["training"]).locator("[data-progress]"))
    assert _within_width(page, row(page, uids["error"]).locator("[data-error]")), "error clipped"
    shot(page, "40-phone-cards")
    assert_no_serious_violations(page, None, "the table as cards (390 px)")

    # A button on a card works: run the READY model (no node: its job waits in the queue).
    row(page, uids["ready"]).get_by_role("button", name="🚀 학습 실행").click()
    expect(row(page, uids["ready"]).locator(".cell-status .badge")).to_have_text("🔄 진행중")
    _no_sideways_scrolling(page)

    # The model view fits the phone too: the charts are as wide as their box, no wider.
    row(page, uids["done"]).locator("a.model-link").click()
    chart = page.locator("#panel .chart").first
    expect(chart).to_be_visible()
    assert _within_width(page, chart)
    panel_width = page.locator("#panel").bounding_box()["width"]
    for box in (c.bounding_box() for c in page.locator("#panel .chart").all()):
        assert box is not None and box["width"] <= panel_width
    _no_sideways_scrolling(page)
    shot(page, "41-phone-model-view", full_page=False)


def _focused(page) -> str:
    """What has the keyboard focus, as a selector-ish string (tag#id[data-cmd][data-uuid])."""
    return page.evaluate(
        """() => { const el = document.activeElement;
          if (!el || el === document.body) return 'body';
          return [el.tagName.toLowerCase(), el.id && `#${el.id}`,
                  el.dataset.cmd && `[data-cmd=${el.dataset.cmd}]`,
                  el.dataset.uuid && `[data-uuid=${el.dataset.uuid}]`,
                  el.closest('#panel') ? ' in #panel' : '',
                  el.closest('dialog') ? ` in dialog#${el.closest('dialog').id}` : '']
                 .join(''); }"""
    )


def test_dialogs_and_the_model_view_are_real_dialogs(page, live_server, db, tmp_path) -> None:
    uids = _seed_each_state(live_server, db)
    _add_metrics(db, uids["done"], tmp_path / "train")
    page.goto("/")
    expect(page.locator("tbody[data-uuid]")).to_have_count(len(_STATES))
    assert_no_serious_violations(page, None, "the table")

    # The create form and the token dialog: named by their heading, focus in, Esc gives it back.
    for opener, dialog, first in (
        ("#create-btn", "#create-dialog", "input[name=modelVer]"),
        ("#token-btn", "#token-dialog", "#token-input"),
    ):
        page.locator(opener).focus()
        page.keyboard.press("Enter")
        expect(page.locator(dialog)).to_have_attribute("open", "")
        expect(page.locator(f"{dialog} {first}")).to_be_focused()
        title = page.locator(dialog).get_attribute("aria-labelledby")
        assert title and page.locator(f"#{title}").inner_text().strip()
        assert_no_serious_violations(page, dialog, dialog)
        page.keyboard.press("Escape")
        expect(page.locator(dialog)).not_to_have_attribute("open", "")
        expect(page.locator(opener)).to_be_focused()
    expect(page.get_by_label("토큰 (API_TOKEN)")).to_have_count(1)

    # The model view: a modal dialog that takes the focus, keeps it, and gives it back.
    link = row(page, uids["done"]).locator("a.model-link")
    link.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#panel")
    expect(panel).to_be_visible()
    assert panel.get_attribute("role") == "dialog" and panel.get_attribute("aria-modal") == "true"
    expect(page.locator("#panel-title")).to_be_focused()
    expect(page.locator("#panel .chart").first).to_be_visible()
    for key in ("Shift+Tab", "Tab", "Tab", "Shift+Tab", "Shift+Tab"):
        page.keyboard.press(key)
        assert _focused(page).endswith(" in #panel"), f"focus left the model view after {key}"
    assert page.locator("main").evaluate("el => el.inert")  # the page behind: no focus, no clicks
    assert_no_serious_violations(page, "#panel", "the model view")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(link).to_be_focused()

    # A confirmation opened from a row (which redraws while the command is pending): Esc gives
    # the focus back to the same button of that row.
    restart = row(page, uids["stopped"]).get_by_role("button", name="🔄 재실행")
    restart.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-dialog")).to_have_attribute("open", "")
    expect(page.locator("#confirm-yes")).to_be_focused()
    assert_no_serious_violations(page, "#confirm-dialog", "the confirmation")
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-dialog")).not_to_have_attribute("open", "")
    expect(row(page, uids["stopped"]).get_by_role("button", name="🔄 재실행")).to_be_focused()

    # The test run's epoch picker (a labelled select in the confirmation).
    row(page, uids["trained"]).get_by_role("button", name="🧪 테스트 실행").click()
    expect(page.get_by_label("테스트할 에폭")).to_be_visible()
    assert_no_serious_violations(page, "#confirm-dialog", "the epoch picker")
    page.keyboard.press("Escape")

    # Enter on a row's button: the row is redrawn in its new state, and the focus stays on that
    # model (its next action, ⏹️ 학습 취소), never on <body>.
    run = row(page, uids["ready"]).get_by_role("button", name="🚀 학습 실행")
    run.focus()
    page.keyboard.press("Enter")
    expect(row(page, uids["ready"]).locator(".cell-status .badge")).to_have_text("🔄 진행중")
    cancel = row(page, uids["ready"]).get_by_role("button", name="⏹️ 학습 취소")
    expect(cancel).to_be_focused()


def test_training_time_covers_every_attempt_of_a_resumed_training(page, live_server, db) -> None:
    """Run (3 min, stopped), resume (2 min, completed): 학습 시간 is the first start to the last
    end, its duration the 5 minutes the containers ran, not the hour between them."""
    created = live_server.create_model()
    uid = created["uuid"]
    start = utcnow().replace(microsecond=0) - timedelta(hours=2)
    spans = [
        (start - timedelta(hours=5), start - timedelta(hours=4), {}),  # before the restart
        (start, start + timedelta(minutes=3), {}),  # the restart: the training starts here
        (start + timedelta(hours=1), start + timedelta(hours=1, minutes=2), {"resume_from": 2}),
    ]
    with transaction(db) as session:
        model = session.scalar(select(Model).where(Model.uuid == uuid.UUID(uid)))
        assert model is not None
        for attempt, (began, ended, extra) in enumerate(spans, start=1):
            job = Job(
                model_id=model.id, job_type="TRAIN", attempt=attempt, status_cd="SUCCESS",
                params={**model.params, **extra}, image=model.image,
                started_dttm=began, finished_dttm=ended,
            )
            session.add(job)
            session.flush()
        model.current_attempt_id = job.id
        model.status_cd, model.step1_state = "COMPLETED", "COMPLETED"
        model.step1_strt_dttm, model.step1_end_dttm = spans[-1][0], spans[-1][1]
        model.epochs_done = model.checkpoint_epoch = model.best_epoch = 4

    answer = live_server.model(uid)
    assert answer["step1Duration"] == "2분 0초"  # the last attempt alone
    assert answer["step1TotalDuration"] == "5분 0초"
    assert answer["step1Attempts"] == 2
    assert answer["step1FirstStrtDttm"] < answer["step1StrtDttm"]

    page.goto("/")
    cells = row(page, uid)
    # "5분 0초" is shown "5분", as §2.2 does
    expect(cells.locator(".cell-step1")).to_contain_text("✅ 완료 (5분)")
    expect(cells.locator("[data-attempts]")).to_have_text("시도 2회 합계 (멈춘 사이 제외)")
    first, end = answer["step1FirstStrtDttm"], answer["step1EndDttm"]
    shown_end = end[11:16] if end[:10] == first[:10] else end[:16]  # the date when it differs
    expect(cells.locator("td.cell-time").first).to_have_text(f"{first[:16]} ~ {shown_end}")
