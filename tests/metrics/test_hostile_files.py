"""Metric files a hostile job plants: links, FIFOs, lines of megabytes, a backlog larger than
one live pass. The ingests name the file and never block or hold it all in memory."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.metrics import MetricsError, ingest_live, live
from app.metrics.csvfile import MAX_LINE_BYTES
from tests.metrics.conftest import Ids, ingest, stored, write


@pytest.mark.parametrize("target", ["/proc/self/environ", "/dev/zero"])
def test_ingest_refuses_a_linked_csv(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path, target: str
) -> None:
    write(tmp_path / "train.csv", "epoch,loss\n1,0.5\n")
    (tmp_path / "val.csv").symlink_to(target)
    with pytest.raises(MetricsError) as refused:
        ingest(db, model_ids, tmp_path)
    assert str(refused.value) == (
        "metrics-parse-error: val.csv is a symbolic link (links are not followed)"
    )


def test_live_ingest_skips_a_fifo_without_blocking(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    os.mkfifo(tmp_path / "train.csv")
    (tmp_path / "val.csv").symlink_to("/dev/zero")
    added: list[int] = []
    reader = threading.Thread(
        target=lambda: added.append(ingest_live(db, model_ids.model, model_ids.job, tmp_path)),
        daemon=True,
    )
    reader.start()
    reader.join(10)
    assert added == [0], "the live ingest blocked on a FIFO or read /dev/zero"


def test_a_header_of_megabytes_without_a_newline_is_an_error(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    write(tmp_path / "train.csv", b"epoch," + b"x" * (MAX_LINE_BYTES + 10))
    write(tmp_path / "val.csv", "epoch,val_loss\n2,0.5\n4,0.4\n")
    assert ingest_live(db, model_ids.model, model_ids.job, tmp_path) == 2  # val only
    with pytest.raises(MetricsError, match=r"train\.csv line 1: the line is longer than"):
        ingest(db, model_ids, tmp_path)


def test_a_data_line_of_megabytes_is_an_error(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path
) -> None:
    write(tmp_path / "train.csv", b"epoch,loss\n1,0.5\n2," + b"9" * (3 * MAX_LINE_BYTES) + b"\n")
    write(tmp_path / "val.csv", "epoch,val_loss\n2,0.5\n4,0.4\n")
    with pytest.raises(MetricsError, match=r"train\.csv line 3: the line is longer than"):
        ingest(db, model_ids, tmp_path)


def test_live_ingest_reads_a_long_backlog_over_several_passes(
    db: sessionmaker[Session], model_ids: Ids, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "READ_BYTES", 64)
    rows = "".join(f"{epoch},0.{epoch}\n" for epoch in range(1, 41))
    write(tmp_path / "train.csv", "epoch,loss\n" + rows)
    passes = 0
    while ingest_live(db, model_ids.model, model_ids.job, tmp_path):
        passes += 1
    assert passes > 3
    assert [epoch for epoch, *_ in stored(db, model_ids.model, "train")] == list(range(1, 41))
