"""The automated accessibility check of the e2e tests: axe-core run in the page (Chromium).

axe-core comes with the `axe-playwright-python` package (its wheel holds axe.min.js), so the
check needs no download at run time. Any page a test has open can be checked, whole or a part
of it (a CSS selector), e.g. `assert_no_serious_violations(page, "#panel", "the model view")`.
"""

from __future__ import annotations

from typing import Any

#: axe's impacts that fail a check (minor and moderate ones are reported by axe, not failed).
FAILING_IMPACTS = ("serious", "critical")


def serious_violations(page: Any, context: str | None = None) -> list[dict[str, Any]]:
    """axe's violations of impact serious or critical on the page, or inside `context` (a CSS
    selector), as axe reports them (id, impact, help, nodes)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, context=context, options={"resultTypes": ["violations"]})
    return [v for v in results.response["violations"] if v["impact"] in FAILING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per violation: rule, impact, what it asks, and the elements (3 at most)."""
    parts = []
    for v in violations:
        nodes = [
            f"    {', '.join(map(str, n['target']))}: {n.get('failureSummary', '').strip()}"
            for n in v["nodes"][:3]
        ]
        more = len(v["nodes"]) - len(nodes)
        parts.append(
            f"{v['id']} ({v['impact']}): {v['help']}\n"
            + "\n".join(nodes)
            + (f"\n    … and {more} more" if more > 0 else "")
        )
    return "\n".join(parts)


def assert_no_serious_violations(page: Any, context: str | None = None, what: str = "") -> None:
    found = serious_violations(page, context)
    where = what or context or "the page"
    assert not found, f"axe: serious or critical violations in {where}:\n{describe(found)}"
