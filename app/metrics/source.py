"""Fingerprints of what a split's rows were loaded from, so a completion can keep the rows the
live ingest already loaded from the same bytes and load only the rest.

A fingerprint covers whole lines from the start of the file (header included): their byte
count, the number of the next line and their SHA-256 (~1 GB/s: 0.05 s for a 50 MB file).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from app import jobfiles
from app.jobfiles import FileKind, JobPath, LineTooLong
from app.metrics.csvfile import MAX_LINE_BYTES

_BLOCK = 4 << 20


class Source(NamedTuple):
    bytes: int  # whole lines from the start of the file
    lines: int  # the number of the line after them
    digest: str  # SHA-256 of those bytes, hex


def of_bytes(
    data: bytes, hasher: hashlib._Hash | None = None, start: Source | None = None
) -> tuple[Source, hashlib._Hash]:
    """Extend `start` (hashed so far by `hasher`) with `data`, which must be whole lines."""
    hasher = hasher.copy() if hasher is not None else hashlib.sha256()
    hasher.update(data)
    done = start or Source(0, 1, "")
    return Source(
        done.bytes + len(data), done.lines + data.count(b"\n"), hasher.hexdigest()
    ), hasher


def of_file(path: JobPath) -> Source:
    """The fingerprint of every whole line of the file (an unterminated last line left out).
    Raises LineTooLong rather than hold a line longer than MAX_LINE_BYTES."""
    hasher = hashlib.sha256()
    total, lines, pending = 0, 1, b""
    with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
        while block := handle.read(_BLOCK):
            data = pending + block
            cut = data.rfind(b"\n") + 1
            hasher.update(data[:cut])
            total += cut
            lines += data.count(b"\n", 0, cut)
            pending = data[cut:]
            if len(pending) > MAX_LINE_BYTES:
                raise LineTooLong(lines, MAX_LINE_BYTES)
    return Source(total, lines, hasher.hexdigest())


def starts_with(path: JobPath, source: Source) -> bool:
    """Whether the file still begins with exactly the bytes `source` describes."""
    hasher = hashlib.sha256()
    remaining = source.bytes
    with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
        while remaining > 0:
            block = handle.read(min(_BLOCK, remaining))
            if not block:
                return False
            hasher.update(block)
            remaining -= len(block)
    return hasher.hexdigest() == source.digest
