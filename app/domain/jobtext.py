"""Text a job wrote (its log, CSV headers, bits of its files) on its way into the database or
an answer. Pure.

PostgreSQL refuses NUL in text and JSONB, and a Python string may hold lone surrogates
(bytes decoded with `surrogateescape`) that no UTF-8 encoder accepts: either made a write fail
and left a job stuck. `storable` makes any such text safe to store; `snippet` is the most of a
job's content an error message may quote.
"""

from __future__ import annotations

SNIPPET_CHARS = 40


def storable(text: str | bytes) -> str:
    """`text` as valid UTF-8 without NUL: invalid bytes become `\\xNN`, NUL becomes `\\x00`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _without_surrogates(text)
    return text.replace("\0", "\\x00")


def storable_or_none(text: str | bytes | None) -> str | None:
    return None if text is None else storable(text)


def _without_surrogates(text: str) -> str:
    try:  # bytes decoded with surrogateescape: show the original bytes
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def snippet(text: str | bytes, limit: int = SNIPPET_CHARS) -> str:
    """At most `limit` characters of job content, escaped and quoted (repr), `…` when cut."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    cut = text[:limit]
    return repr(cut) + ("…" if len(text) > limit else "")
