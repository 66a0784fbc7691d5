"""The fast path on PostgreSQL: stream the CSV file itself into COPY, no per-row Python.

PostgreSQL parses the numbers (its float8/int4 input), counts the fields of each row and
enforces the (epoch, step) key; Python only screens each 1 MiB block with C-speed bytes
operations and prefixes every line with `model_id,job_id,`. The screen admits a block only if
every byte is one of `0-9 + - . e E , space newline` or a letter of nan/inf/infinity, the
lines are LF or CRLF, and no line is blank. On such input PostgreSQL accepts a subset of what
app.metrics.csvfile accepts, with the same doubles (both parse correctly rounded), so
whatever COPY stores is what the careful path would have stored.

From the first block that fails the screen (quotes, a blank line, text, …) on, the careful
path takes over: the rows before it stay loaded by COPY. A row COPY itself refuses raises
psycopg's error; the caller rolls back to its savepoint and lets the careful path name the
line and column that is wrong (or load the file, where the two disagree on a value such as
1e999, which Python reads as inf).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import psycopg
from psycopg.copy import QueuedLibpqWriter

from app import jobfiles
from app.db.models import METRIC_SLOTS
from app.jobfiles import FileKind, JobPath
from app.metrics.csvfile import MAX_LINE_BYTES, Header

ALLOWED = b"0123456789+-.eE, \n" + b"nNaAiIfFtTyY"
# Blocks of 1 MiB, handed to psycopg's writer thread (QueuedLibpqWriter): while PostgreSQL
# parses one block, this thread screens and prefixes the next. Sent inline, 4 MiB at a time,
# the two took turns: ~10 % slower. The writer's queue holds at most 1024 x 128 KiB, so a
# file far larger than that waits for the server rather than filling memory.
BLOCK = 1 << 20
# PostgreSQL's text format, not csv: on bytes that passed the screen (no quote, no backslash)
# the two read the same (an empty field is NULL, a field of spaces an error), and text skips
# csv's quote handling: ~5 % faster here.
_FORMAT = "(FORMAT text, DELIMITER ',', NULL '')"
_TAIL = 64 << 10  # trailing blank lines longer than this go the careful way
_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True)
class FastCopy:
    """What the fast path loaded: `rows` data rows; the careful path takes over at `rest_offset`
    (file line `rest_line`) when a block failed the screen, or never when it is None."""

    rows: int
    rest_offset: int | None
    rest_line: int


def copy_file(
    conn: psycopg.Connection[Any],
    table: str,
    header: Header,
    path: JobPath,
    model_id: int,
    job_id: int,
    start: int | None = None,
    first_line: int = 2,
) -> FastCopy:
    """COPY the data rows of `path` from byte `start` (line `first_line`; default: the first
    data line) into `table`, up to the first block that fails the screen.

    Raises psycopg's DataError / IntegrityError for a row COPY refused."""
    start = header.data_offset if start is None else start
    if len(header.metric_names) > METRIC_SLOTS:
        return FastCopy(0, start, first_line)  # the overflow array needs the careful path
    columns = ", ".join(["model_id", "job_id", *header.db_columns()])
    statement = f"COPY {table} ({columns}) FROM STDIN {_FORMAT}"
    prefix = f"{model_id},{job_id},".encode()
    rows, offset = 0, start
    with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
        end = _data_end(handle)
        if end is None:
            return FastCopy(0, start, first_line)
        if end <= start:
            return FastCopy(0, None, first_line)
        handle.seek(start)
        with (
            conn.cursor() as cursor,
            cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy,
        ):
            for size, block in _blocks(handle, end - start):
                if block is None:
                    # Leaving the block ends the COPY of the rows so far.
                    return FastCopy(rows, offset, first_line + rows)
                rows += block.count(b"\n")
                offset += size
                copy.write(prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n")
    return FastCopy(rows, None, first_line + rows)


def _data_end(handle: BinaryIO) -> int | None:
    """Offset just past the last byte that is not whitespace (trailing blank lines dropped);
    None for a run of blank lines too long to look at here."""
    size = handle.seek(0, 2)
    start = max(0, size - _TAIL)
    handle.seek(start)
    kept = handle.read().rstrip(_WHITESPACE)
    if not kept and start > 0:
        return None
    return start + len(kept)


def _blocks(handle: BinaryIO, remaining: int) -> Iterator[tuple[int, bytes | None]]:
    """(bytes of file, screened block of whole lines) pairs; None for a block that failed."""
    carry = b""
    while remaining > 0:
        data = handle.read(min(BLOCK, remaining))
        if not data:
            yield 0, None  # the file shrank while being read
            return
        remaining -= len(data)
        data = carry + data
        if remaining > 0:
            cut = data.rfind(b"\n") + 1
            data, carry = data[:cut], data[cut:]
            if len(carry) > MAX_LINE_BYTES:
                yield 0, None  # a line too long to hold: the careful path names it
                return
            if not data:
                continue
        size = len(data)
        if not data.endswith(b"\n"):
            data += b"\n"
        yield size, screen(data)


def screen(block: bytes) -> bytes | None:
    """The block with LF line ends, or None when COPY must not see it."""
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
        if b"\r" in block:
            return None  # a bare carriage return
    if block.translate(None, ALLOWED):
        return None  # a byte that is not part of a number
    if block.startswith(b"\n") or b"\n\n" in block:
        return None  # a blank line
    return block
