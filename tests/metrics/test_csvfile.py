"""The careful parser: header rules, odd-but-valid input, and errors that name file, line and
column. No database."""

from __future__ import annotations

import math

import pytest

from app.db.models import NO_STEP
from app.metrics.csvfile import parse_header, parse_rows
from app.metrics.errors import MetricsError


def parse(content: bytes, file: str = "train.csv") -> tuple[tuple[str, ...], list]:
    first, _, rest = content.partition(b"\n")
    header = parse_header(first + b"\n" if _ else first, file)
    lines = [line + b"\n" for line in rest.split(b"\n")] if rest else []
    return header.metric_names, list(parse_rows(lines, header))


def error(content: bytes, file: str = "train.csv") -> MetricsError:
    with pytest.raises(MetricsError) as caught:
        parse(content, file)
    return caught.value


def test_header_decides_the_columns_in_any_order() -> None:
    names, rows = parse(b"loss,Step,EPOCH,lr\n0.5,10,1,0.1\n0.4,20,1,0.1\n")
    assert names == ("loss", "lr")
    assert [(r.epoch, r.step, r.values) for r in rows] == [(1, 10, (0.5, 0.1)), (1, 20, (0.4, 0.1))]


def test_bom_crlf_quotes_blank_lines_and_missing_cells() -> None:
    content = b'\xef\xbb\xbfepoch,"val loss",acc\r\n1,"0.5",\r\n\r\n2, 0.25 ,1e-3\r\n\r\n\r\n'
    names, rows = parse(content)
    assert names == ("val loss", "acc")
    assert [(r.epoch, r.values, r.line) for r in rows] == [
        (1, (0.5, None), 2),
        (2, (0.25, 0.001), 4),
    ]
    assert rows[0].step == NO_STEP


def test_nan_and_infinities_are_values() -> None:
    _, rows = parse(b"epoch,a,b,c,d\n1,nan,inf,-Infinity,NaN\n")
    a, b, c, d = rows[0].values
    assert math.isnan(a) and math.isnan(d) and b == math.inf and c == -math.inf


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "train.csv line 1: the file is empty (no header)"),
        (b"\n1,2\n", "train.csv line 1: line 1 (the header) is blank"),
        (b"loss,acc\n0.1,0.2\n", "train.csv line 1: no 'epoch' column (columns: loss, acc)"),
        (b"epoch,loss,,acc\n", "train.csv line 1 column 3: a column has no name"),
        (
            b"epoch,loss,loss\n",
            "train.csv line 1 column 3: column 'loss' appears twice (also column 2)",
        ),
        (
            b"epoch,loss,Epoch\n",
            "train.csv line 1 column 3: column 'Epoch' appears twice (also column 1)",
        ),
        (b"epoch,loss\n1,0.5\n2,abc\n", "train.csv line 3 column 2: 'abc' in loss is not a number"),
        (b"epoch,loss\n1,1_000\n", "train.csv line 2 column 2: '1_000' in loss is not a number"),
        (b"epoch,loss\n1,0x10\n", "train.csv line 2 column 2: '0x10' in loss is not a number"),
        (b"epoch,loss,acc\n1,0.5\n", "train.csv line 2 column 3: 2 fields where the header has 3"),
        (b"epoch,loss\n1,0.5,7\n", "train.csv line 2 column 3: 3 fields where the header has 2"),
        (b"epoch,loss\n1.0,0.5\n", "train.csv line 2 column 1: epoch '1.0' is not an integer"),
        (b"epoch,loss\n,0.5\n", "train.csv line 2 column 1: epoch is empty"),
        (
            b"epoch,loss\n9999999999,0.5\n",
            "train.csv line 2 column 1: epoch 9999999999 does not fit 32 bits",
        ),
        (
            b"epoch,loss\n1,0.5\n\n1,0.4\n",
            "train.csv line 4 column 1: epoch 1 appears twice (first on line 2)",
        ),
        (
            b"epoch,step,loss\n1,5,0.5\n1,5,0.4\n",
            "train.csv line 3 column 1: epoch 1 step 5 appears twice (first on line 2)",
        ),
        (b"epoch,loss\n1,\xff\n", "train.csv line 2: the line is not UTF-8"),
        (b'epoch,loss\n1,"0.5"x\n', "train.csv line 2: bad CSV"),
    ],
)
def test_errors_name_file_line_and_column(content: bytes, expected: str) -> None:
    assert str(error(content)).startswith(f"metrics-parse-error: {expected}")


def test_step_rows_may_share_an_epoch() -> None:
    _, rows = parse(b"epoch,step,loss\n1,1,0.9\n1,2,0.8\n2,3,0.7\n")
    assert [(r.epoch, r.step) for r in rows] == [(1, 1), (1, 2), (2, 3)]


def test_text_is_rejected_not_kept() -> None:
    # The documented policy: a metric is a number or empty; "n/a" must not become a gap.
    assert "'n/a' in acc is not a number" in str(error(b"epoch,acc\n1,n/a\n"))
