"""The one error an ingest raises for a bad metric file (SPEC §5's `metrics-parse-error`)."""

from __future__ import annotations


class MetricsError(Exception):
    """`metrics-parse-error: <file> line <n>[ column <c>]: <why>`.

    The completion judge puts `str(error)` after `OUTPUT_INCOMPLETE: ` in the model's
    last_error, so the message alone must let a user find and fix the cell.
    """

    def __init__(self, file: str, line: int, why: str, column: int | None = None) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.why = why
        where = f"{file} line {line}" + (f" column {column}" if column is not None else "")
        super().__init__(f"metrics-parse-error: {where}: {why}")
