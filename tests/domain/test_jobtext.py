"""Job text on its way into the database or an answer (app/domain/jobtext.py)."""

from __future__ import annotations

import pytest

from app.domain.jobtext import snippet, storable, storable_or_none


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("plain 한글 text\n", "plain 한글 text\n"),
        ("a\0b", "a\\x00b"),
        (b"a\0b\xff\xfe end", "a\\x00b\\xff\\xfe end"),  # bytes: invalid UTF-8 escaped
        (b"\xed\xa0\x80".decode("utf-8", "surrogateescape"), "\\xed\\xa0\\x80"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ],
)
def test_storable(raw: str | bytes, stored: str) -> None:
    assert storable(raw) == stored
    stored.encode("utf-8")  # PostgreSQL accepts it: valid UTF-8 ...
    assert "\0" not in stored  # ... without NUL


def test_storable_or_none() -> None:
    assert storable_or_none(None) is None
    assert storable_or_none("x\0") == "x\\x00"


def test_snippet_is_short_and_escaped() -> None:
    assert snippet("abc") == "'abc'"
    assert snippet("a\0\n" + "x" * 100) == repr("a\0\n" + "x" * 37) + "…"
    assert snippet(b"\xff\x00") == repr("\\xff\x00")
