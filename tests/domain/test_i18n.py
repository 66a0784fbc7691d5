"""The dashboard's texts live in one catalogue per language (docs/dashboard.md, "Language").

The rule these tests hold:

- No Hangul at all (not in strings, not in comments) in app/web/static/*.js other than the
  catalogues i18n.<lang>.js: every text the scripts show comes from `t(key)`.
- In the templates, Hangul only as the Korean text of an element that names its key: the text
  of an element with data-i18n / data-i18n-html, or an attribute listed in its data-i18n-attr;
  and inside an element marked lang="ko" (the language switch's own name, 한국어, which reads the
  same in every language). That Korean must be the ko catalogue's text for the key, so a page
  looks the same before and after common.js applies the catalogue.
- Both catalogues have exactly the same keys and the same {places} in each text.

A catalogue is a JS file holding one flat JSON object, read here with json after stripping
the one assignment around it (no comments or trailing commas inside the object).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

STATIC = Path(__file__).resolve().parents[2] / "app" / "web" / "static"
TEMPLATES = STATIC.parent / "templates"
LANGS = ("ko", "en")
HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
CATALOGUE = re.compile(
    r"\A(?:/\*.*?\*/\s*)?\(window\.trainyardCatalogues = window\.trainyardCatalogues \|\| \{\}\)"
    r"\.(?P<lang>[a-z]+) = (?P<body>\{.*\});\s*\Z",
    re.DOTALL,
)
PLACE = re.compile(r"\{(\w+)(?::[^/{}]*/[^/{}]*)?\}")


def catalogue(lang: str) -> dict[str, str]:
    text = (STATIC / f"i18n.{lang}.js").read_text(encoding="utf-8")
    match = CATALOGUE.match(text)
    assert match and match["lang"] == lang, f"i18n.{lang}.js is not one assignment of a JSON object"
    entries = json.loads(match["body"], object_pairs_hook=_no_duplicates)
    assert all(isinstance(v, str) for v in entries.values()), f"i18n.{lang}.js: texts only"
    return entries


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"keys given twice: {twice}"
    return dict(pairs)


def test_no_hangul_in_the_scripts_outside_the_catalogues() -> None:
    scripts = [p for p in sorted(STATIC.glob("*.js")) if not p.name.startswith("i18n.")]
    assert {p.name for p in scripts} >= {"common.js", "dashboard.js", "compare.js", "nodes.js"}
    found = [
        f"{p.name}:{n}: {line.strip()[:80]}"
        for p in scripts
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if HANGUL.search(line)
    ]
    where = "\n".join(found)
    assert not found, f"Korean outside the catalogues (move it to i18n.ko.js / en.js):\n{where}"


def test_both_catalogues_have_the_same_keys_and_places() -> None:
    ko, en = catalogue("ko"), catalogue("en")
    assert sorted(set(ko) - set(en)) == [], "keys missing from i18n.en.js"
    assert sorted(set(en) - set(ko)) == [], "keys missing from i18n.ko.js"
    differing = [k for k in ko if set(PLACE.findall(ko[k])) != set(PLACE.findall(en[k]))]
    assert differing == [], f"texts whose {{places}} differ between ko and en: {differing}"


def test_the_english_catalogue_has_no_korean() -> None:
    korean = {k: v for k, v in catalogue("en").items() if HANGUL.search(v)}
    assert korean == {}


class _TemplateTexts(HTMLParser):
    """Collects the Korean text outside the rule above, and each keyed element's text."""

    VOID: ClassVar[set[str]] = {
        "meta", "link", "input", "br", "img", "hr", "source", "col", "area", "base", "wbr",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[dict[str, str | None]] = []
        self.stray: list[str] = []
        self.keyed: list[tuple[str, str, str]] = []  # (key, kind, Korean as written)
        self.texts: list[list[str]] = []  # text buffers of the open keyed elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":  # <html lang> names the page's language, not a Korean-only zone
            a.pop("lang", None)
        listed = {}
        for pair in (a.get("data-i18n-attr") or "").split(";"):
            if ":" in pair:
                name, key = (part.strip() for part in pair.split(":", 1))
                listed[name] = key
        for name, value in a.items():
            if value and HANGUL.search(value):
                if name in listed:
                    self.keyed.append((listed[name], "attr", value))
                elif not self._korean_zone(a):
                    self.stray.append(f"<{tag} {name}={value!r}>")
        if tag in self.VOID:
            return
        self.stack.append(a)
        self.texts.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID or not self.stack:
            return
        a = self.stack.pop()
        text = "".join(self.texts.pop())
        if self.texts:
            self.texts[-1].append(text)
        key = a.get("data-i18n") or a.get("data-i18n-html")
        if key:
            self.keyed.append((key, "text", text))

    def handle_data(self, data: str) -> None:
        if self.texts:
            self.texts[-1].append(data)
        if HANGUL.search(data) and not any(self._keyed_or_korean(a) for a in self.stack):
            self.stray.append(data.strip())

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    @staticmethod
    def _korean_zone(a: dict[str, str | None]) -> bool:
        """An element marked lang="ko" inside the page: the switch's own name, 한국어."""
        return a.get("lang") == "ko"

    def _keyed_or_korean(self, a: dict[str, str | None]) -> bool:
        return bool(a.get("data-i18n") or a.get("data-i18n-html")) or self._korean_zone(a)


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_templates_show_korean_only_as_the_ko_text_of_a_key() -> None:
    ko, en = catalogue("ko"), catalogue("en")
    for name in ("index.html", "nodes.html"):
        source = (TEMPLATES / name).read_text(encoding="utf-8")
        parser = _TemplateTexts()
        parser.feed(source)
        assert parser.stray == [], f"{name}: Korean without a data-i18n key: {parser.stray}"
        assert parser.keyed, f"{name}: no keyed text"
        for key, kind, written in parser.keyed:
            assert key in ko and key in en, f"{name}: {key} is in no catalogue"
            if HANGUL.search(written) or kind == "attr":
                expected = ko[key]
                if kind == "text":  # data-i18n-html: its markup compared as text
                    expected = re.sub(r"<[^>]+>", "", expected)
                assert _squash(written) == _squash(expected), f"{name}: {key} reads {written!r}"
        # the header's language switch, on every page
        assert 'data-lang="ko"' in source and 'data-lang="en"' in source, name
        for lang in LANGS:
            assert f"i18n.{lang}.js" in source, name


def test_the_switch_and_t_are_shared_by_both_pages() -> None:
    common = (STATIC / "common.js").read_text(encoding="utf-8")
    assert "'trainyard.lang'" in common and "URLSearchParams(location.search).get('lang')" in common
    assert re.search(r"\bt, josa, fmtDuration\b", common)
