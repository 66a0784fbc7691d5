"""Reading a metric CSV the careful way: every rule checked, every error names file, line and
column. The fast loader (app/metrics/fastcopy.py) accepts only files on which it would agree
with this module; anything it is unsure of comes here.

The format (trainer/README.md: `train.csv`, `val.csv`, `test.csv`):

- UTF-8 with or without a BOM; LF or CRLF line ends; fields may be quoted (RFC 4180).
- Line 1 is the header. `epoch` (required) and `step` (optional) are found by name, in any
  position and any letter case; every other column is a metric, kept in file order under the
  name written (surrounding spaces stripped). Names must be non-empty and unique.
- Blank lines are skipped, trailing ones included.
- `epoch` and `step`: integers that fit 32 bits; never empty.
- A metric cell is a number as Python's `float()` reads it (`0.5`, `-1e-3`, `nan`, `inf`,
  `-Infinity`, any letter case), ASCII, without `_`. An empty cell is a missing value
  (stored as NULL). Anything else — text included — is an error, never kept as text: a typo in
  a number must not quietly become a gap in a curve.
- Each (epoch, step) appears at most once: a resumed run must not repeat an epoch.
- A line is at most MAX_LINE_BYTES long; column names are stored with NUL and invalid UTF-8
  escaped (app.domain.jobtext), and an error quotes at most a short escaped snippet of a cell.

The files are a job's, i.e. hostile input: they are opened through app.jobfiles only.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import BinaryIO, NamedTuple

from app import jobfiles
from app.db.models import METRIC_SLOTS, NO_STEP
from app.domain.jobtext import snippet, storable
from app.jobfiles import FileKind, JobFileError, JobPath, LineTooLong
from app.metrics.errors import MetricsError

BOM = b"\xef\xbb\xbf"
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
MAX_LINE_BYTES = 1 << 20  # a longer line is an error, not something to hold in memory
_SHOWN_NAMES = 10  # column names an error lists


@dataclass(frozen=True)
class Header:
    file: str  # the name errors use, e.g. "train.csv"
    width: int  # fields per row
    epoch_at: int
    step_at: int | None
    metric_at: tuple[int, ...]  # field positions of the metrics, in file order
    metric_names: tuple[str, ...]
    data_offset: int  # bytes before line 2 (BOM and header line included)
    complete: bool  # the header line ends with a newline (a live file may be mid-write)

    @property
    def has_step(self) -> bool:
        return self.step_at is not None

    def db_columns(self) -> list[str]:
        """The table column of each field, in file order (metric i goes to slot i)."""
        names = ["" for _ in range(self.width)]
        names[self.epoch_at] = "epoch"
        if self.step_at is not None:
            names[self.step_at] = "step"
        for slot, at in enumerate(self.metric_at):
            names[at] = slot_name(slot)
        return names


class Row(NamedTuple):  # NamedTuple rather than a frozen dataclass: cheap to build
    epoch: int
    step: int  # NO_STEP when the file has no step column
    values: tuple[float | None, ...]  # one per metric, in header order
    line: int


def slot_name(index: int) -> str:
    """Table column of the index-th metric (0-based); past the slots they go to `extra`."""
    return f"m{index + 1:02d}" if index < METRIC_SLOTS else "extra"


def read_header(path: JobPath, file: str) -> Header:
    try:
        with jobfiles.open_file(path, FileKind.METRICS_CSV) as handle:
            first = next(bounded_lines(handle, file), b"")
    except JobFileError as exc:
        if exc.reason is jobfiles.Reason.MISSING:
            raise MetricsError(file, 1, "the file is missing") from None
        raise refused(exc) from None
    except OSError as exc:
        raise MetricsError(file, 1, f"cannot read the file: {exc.strerror}") from None
    return parse_header(first, file)


def refused(exc: JobFileError) -> MetricsError:
    """The gate's refusal as the metrics error (its path is relative to the model folder)."""
    return MetricsError(exc.path, None, exc.why)


def bounded_lines(handle: BinaryIO, file: str, first_line: int = 1) -> Iterator[bytes]:
    """The file's lines from here on; one longer than MAX_LINE_BYTES is an error."""
    try:
        yield from jobfiles.bounded_lines(handle, MAX_LINE_BYTES)
    except LineTooLong as exc:
        line = first_line + exc.line - 1
        raise MetricsError(file, line, f"the line is longer than {MAX_LINE_BYTES} bytes") from None


def parse_header(first_line: bytes, file: str) -> Header:
    raw = first_line[len(BOM) :] if first_line.startswith(BOM) else first_line
    if not raw.strip():
        why = "the file is empty (no header)" if not first_line else "line 1 (the header) is blank"
        raise MetricsError(file, 1, why)
    try:
        text = raw.decode("utf-8")
        cells = next(csv.reader([text], strict=True))
    except UnicodeDecodeError:
        raise MetricsError(file, 1, "the header is not UTF-8") from None
    except csv.Error as exc:
        raise MetricsError(file, 1, f"the header is not valid CSV ({exc})") from None
    names = [storable(cell.strip()) for cell in cells]
    first_seen: dict[str, int] = {}
    epoch_at = step_at = None
    metric_at: list[int] = []
    for at, name in enumerate(names):
        column = at + 1
        if not name:
            raise MetricsError(file, 1, "a column has no name", column)
        key = name.lower() if name.lower() in ("epoch", "step") else name
        if key in first_seen:
            why = f"column '{label(name)}' appears twice (also column {first_seen[key]})"
            raise MetricsError(file, 1, why, column)
        first_seen[key] = column
        if key == "epoch":
            epoch_at = at
        elif key == "step":
            step_at = at
        else:
            metric_at.append(at)
    if epoch_at is None:
        raise MetricsError(file, 1, f"no 'epoch' column (columns: {labels(names)})")
    return Header(
        file=file,
        width=len(names),
        epoch_at=epoch_at,
        step_at=step_at,
        metric_at=tuple(metric_at),
        metric_names=tuple(names[at] for at in metric_at),
        data_offset=len(first_line),
        complete=first_line.endswith(b"\n"),
    )


def parse_rows(
    lines: Iterable[bytes],
    header: Header,
    first_line: int = 2,
    seen: dict[int, int] | None = None,
) -> Iterator[Row]:
    """Rows of the data lines (each with its line end), numbered from `first_line`.

    `seen` maps a packed (epoch, step) to its line; pass one dict to check several batches.
    """
    file = header.file
    seen = {} if seen is None else seen
    reader = csv.reader(_decoded(lines, file, first_line), strict=True)
    names = header.metric_names
    width, epoch_at, step_at, metric_at = (
        header.width,
        header.epoch_at,
        header.step_at,
        header.metric_at,
    )
    pick = _picker(metric_at)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise MetricsError(file, first_line - 1 + reader.line_num, f"bad CSV ({exc})") from None
        line = first_line - 1 + reader.line_num
        if len(cells) <= 1 and not (cells and cells[0].strip()):
            continue  # a blank line
        if len(cells) != width:
            column = min(len(cells), width) + 1
            why = f"{len(cells)} fields where the header has {width}"
            raise MetricsError(file, line, why, column)
        epoch = _integer(cells, epoch_at, "epoch", file, line)
        step = NO_STEP if step_at is None else _integer(cells, step_at, "step", file, line)
        key = (epoch << 32) | (step & 0xFFFFFFFF)
        if key in seen:
            what = f"epoch {epoch}" + (f" step {step}" if step_at is not None else "")
            why = f"{what} appears twice (first on line {seen[key]})"
            raise MetricsError(file, line, why, epoch_at + 1)
        seen[key] = line
        texts = pick(cells)
        try:
            # The common row in one C-level pass; float() is stricter than the rules only
            # for empty cells, and looser only for "_" and non-ASCII digits: checked below.
            values: tuple[float | None, ...] = tuple(map(float, texts))
            joined = "".join(texts)
            if "_" in joined or not joined.isascii():
                raise ValueError
        except ValueError:
            values = tuple(
                _number(cells[at], names[i], file, line, at + 1) for i, at in enumerate(metric_at)
            )
        yield Row(epoch, step, values, line)


def _picker(positions: tuple[int, ...]) -> Callable[[list[str]], tuple[str, ...]]:
    if len(positions) >= 2:
        return itemgetter(*positions)  # type: ignore[return-value]
    if len(positions) == 1:
        only = positions[0]
        return lambda cells: (cells[only],)
    return lambda _cells: ()


def _decoded(lines: Iterable[bytes], file: str, first_line: int) -> Iterator[str]:
    for number, raw in enumerate(lines, start=first_line):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MetricsError(file, number, "the line is not UTF-8") from None


def _integer(cells: list[str], at: int, name: str, file: str, line: int) -> int:
    text = cells[at]
    if text.isascii() and text.isdigit() and len(text) < 10:  # the common case, quickly
        return int(text)
    text = text.strip()
    if not text:
        raise MetricsError(file, line, f"{name} is empty", at + 1)
    if not _INTEGER.fullmatch(text):
        raise MetricsError(file, line, f"{name} {_show(text)} is not an integer", at + 1)
    value = int(text) if len(text) <= 12 else INT4_MAX + 1  # int() of 5000 digits raises
    if not INT4_MIN <= value <= INT4_MAX:
        raise MetricsError(file, line, f"{name} {label(text)} does not fit 32 bits", at + 1)
    return value


def _number(cell: str, name: str, file: str, line: int, column: int) -> float | None:
    text = cell.strip()
    if not text:
        return None
    if text.isascii() and "_" not in text:
        try:
            return float(text)
        except ValueError:
            pass
    raise MetricsError(file, line, f"{_show(text)} in {label(name)} is not a number", column)


def _show(text: str) -> str:
    return snippet(text)


def label(name: str) -> str:
    """A column name as an error shows it: as written when short and printable, else a
    snippet."""
    return name if len(name) <= 40 and name.isprintable() else snippet(name)


def labels(names: Iterable[str]) -> str:
    shown = list(names)
    text = ", ".join(label(n) for n in shown[:_SHOWN_NAMES])
    return text + (f", … ({len(shown)} in all)" if len(shown) > _SHOWN_NAMES else "")
