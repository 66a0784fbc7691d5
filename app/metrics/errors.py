"""The one error an ingest raises for a bad metric file (SPEC §5's `metrics-parse-error`)."""

from __future__ import annotations


class MetricsError(Exception):
    """`metrics-parse-error: <file> line <n>[ column <c>]: <why>` (or `<file> <why>` for a
    file the gate refused: a link, a FIFO, too large).

    The completion judge puts `str(error)` after `OUTPUT_INCOMPLETE: ` in the model's
    last_error, so the message alone must let a user find and fix the cell.
    """

    def __init__(self, file: str, line: int | None, why: str, column: int | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.why = why
        if line is None:  # the file as a whole, e.g. "train/val.csv is a FIFO, …"
            super().__init__(f"metrics-parse-error: {file} {why}")
            return
        where = f"{file} line {line}" + (f" column {column}" if column is not None else "")
        super().__init__(f"metrics-parse-error: {where}: {why}")
