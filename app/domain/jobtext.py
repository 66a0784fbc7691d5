"""Text a job wrote (its log, CSV headers, bits of its files) on its way into the database or
an answer. Pure.

PostgreSQL refuses NUL in text and JSONB, and a Python string may hold lone surrogates
(bytes decoded with `surrogateescape`) that no UTF-8 encoder accepts: either made a write fail
and left a job stuck. `storable` makes any such text safe to store; `snippet` is the most of a
job's content an error message may quote.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator

SNIPPET_CHARS = 40
_LINE_END = re.compile(rb"\r\n|\r|\n")


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


# --- a job's log ------------------------------------------------------------------------------

TRACEBACK_START = "Traceback (most recent call last):"
#: How many lines before the cut a tail may reach back to start at its traceback's first line;
#: a traceback that began earlier keeps that first line and says how many lines were left out.
TRACEBACK_REACH = 20


def log_tail(text: str, lines: int) -> str:
    """The last `lines` whole lines of `text`, never starting inside a Python traceback: a tail
    that would begin in one starts at its `Traceback (most recent call last):` line (when that
    is at most TRACEBACK_REACH lines earlier), or with that line and a note of what was left
    out. So the reader always sees which exception it is looking at and where it came from."""
    if lines <= 0:
        return ""
    all_lines = text.splitlines()
    start = max(0, len(all_lines) - lines)
    if start == 0 or not _inside_traceback(all_lines[start]):
        return "\n".join(all_lines[start:])
    header = _traceback_header(all_lines, start)
    if header is None:
        return "\n".join(all_lines[start:])
    if start - header <= TRACEBACK_REACH:
        return "\n".join(all_lines[header:])
    left_out = start - header - 1
    note = f"  … ({left_out} line{'s' if left_out != 1 else ''} of this traceback left out) …"
    return "\n".join([all_lines[header], note, *all_lines[start:]])


def _inside_traceback(line: str) -> bool:
    """A traceback's frame lines are indented (`  File "…", line 3, in f`, the code below it,
    `    ^^^^`); a line that starts a new message or the exception itself is not."""
    return line.startswith((" ", "\t"))


def _traceback_header(all_lines: list[str], before: int) -> int | None:
    """The index of the traceback line `before` belongs to, if it is one: walking back over
    its indented frame lines to a `Traceback …` line (a chained traceback's own header comes
    first, so the nearest is taken)."""
    for index in range(before - 1, -1, -1):
        line = all_lines[index]
        if line.strip() == TRACEBACK_START:
            return index
        if not _inside_traceback(line):
            return None
    return None


def log_line(raw: bytes) -> str:
    """One line of a job's log (its end of line removed) as an event's `data`: invalid UTF-8
    and NUL escaped as `storable` does, and any carriage return or line feed left inside
    escaped (`\\r`, `\\n`) so the line stays one line on the wire."""
    text = storable(raw.rstrip(b"\r\n") if raw.endswith(b"\n") else raw.rstrip(b"\r"))
    return text.replace("\r", "\\r").replace("\n", "\\n")


def storable_stream(chunks: Iterable[bytes]) -> Iterator[str]:
    """`storable` over a stream of byte chunks (a log being downloaded): a UTF-8 character
    split between two chunks is decoded whole, not escaped as two broken halves."""
    decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")
    for chunk in chunks:
        if text := decoder.decode(chunk):
            yield text.replace("\0", "\\x00")
    if text := decoder.decode(b"", final=True):
        yield text.replace("\0", "\\x00")


def split_log_lines(data: bytes, final: bool) -> tuple[list[bytes], bytes]:
    """Whole lines of `data` (each with its end: LF, CR LF, or a lone CR, as a progress bar
    redraws its line) and what follows the last one. A CR at the very end may be the first
    half of CR LF, so it waits, unless `final` (nothing more will come): then the rest is a
    line of its own too."""
    lines: list[bytes] = []
    start = 0
    for match in _LINE_END.finditer(data):
        if match.group() == b"\r" and match.end() == len(data) and not final:
            break
        lines.append(data[start : match.end()])
        start = match.end()
    rest = data[start:]
    if final and rest:
        lines.append(rest)
        rest = b""
    return lines, rest
