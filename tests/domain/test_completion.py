"""SPEC §5's completion table, row by row."""

import pytest

from app.domain.completion import ContainerEnd, OutputFacts, judge, output_gap
from app.domain.states import JobType
from app.domain.transitions import JobEvent

COMPLETE_TRAIN = OutputFacts(dir_exists=True, val_rows=5)


@pytest.mark.parametrize(
    ("facts", "total", "gap"),
    [
        (COMPLETE_TRAIN, 10, None),
        (OutputFacts(dir_exists=False), 10, "output-dir-missing"),
        (OutputFacts(dir_exists=True, val_rows=None), 10, "val.csv-missing"),
        (OutputFacts(dir_exists=True, val_rows=4), 10, "val.csv-lines-mismatch"),
        (COMPLETE_TRAIN, None, "total-epoch-missing"),
    ],
)
def test_train_output_gaps(facts: OutputFacts, total: int | None, gap: str | None) -> None:
    assert output_gap(JobType.TRAIN, facts, total, 2) == gap


def test_eval_output_gaps() -> None:
    assert (
        output_gap(JobType.EVAL, OutputFacts(True, test_csv=True, results_zip=True), 4, 2) is None
    )
    assert output_gap(JobType.EVAL, OutputFacts(True, results_zip=True), 4, 2) == "test.csv-missing"
    assert output_gap(JobType.EVAL, OutputFacts(True, test_csv=True), 4, 2) == "results-zip-missing"


def test_the_table() -> None:
    ok = judge(ContainerEnd(0, False), None, "tail")
    assert (ok.event, ok.exit_code, ok.error) == (JobEvent.SUCCEEDED, 0, None)
    incomplete = judge(ContainerEnd(0, False), "val.csv-lines-mismatch", "tail")
    assert (incomplete.event, incomplete.error) == (
        JobEvent.FAILED,
        "OUTPUT_INCOMPLETE: val.csv-lines-mismatch",
    )
    crashed = judge(ContainerEnd(3, False), None, "Traceback…")
    assert (crashed.event, crashed.exit_code, crashed.error, crashed.error_message) == (
        JobEvent.FAILED,
        3,
        "CONTAINER_EXIT_3",
        "Traceback…",
    )
    oom = judge(ContainerEnd(137, True), None, "killed")
    assert (oom.event, oom.error) == (JobEvent.FAILED, "OOM_KILLED")
    gone_done = judge(None, None, None)
    assert gone_done.event is JobEvent.SUCCEEDED
    gone_partial = judge(None, "val.csv-lines-mismatch", None)
    assert (gone_partial.event, gone_partial.exit_code, gone_partial.error) == (
        JobEvent.LOST,
        -1,
        "SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE: val.csv-lines-mismatch",
    )


def test_a_lost_node_is_named() -> None:
    lost = judge(None, "val.csv-lines-mismatch", None, node_lost=True)
    assert (lost.event, lost.error) == (
        JobEvent.LOST,
        "NODE_LOST_OUTPUT_INCOMPLETE: val.csv-lines-mismatch",
    )
    assert judge(None, None, None, node_lost=True).event is JobEvent.SUCCEEDED
