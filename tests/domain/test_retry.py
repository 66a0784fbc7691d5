"""The retry policy's rules (app/domain/retry.py): parsing, causes, budget, thrash guard."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.completion import ContainerEnd, judge
from app.domain.retry import (
    InvalidRetryPolicy,
    NoRetry,
    Retry,
    RetryPolicy,
    ThrashGuard,
    cause_of,
    parse_retry_policy,
    retry_decision,
)
from app.domain.states import JobType, StepState
from app.domain.transitions import (
    Accepted,
    ModelSnapshot,
    NewJob,
    Rejected,
    RetryRequest,
    decide,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(3, ("NODE_LOST", "EXIT:3"))
NO_GUARD = ThrashGuard(failures=0)


def test_no_policy_is_the_default_and_never_retries() -> None:
    assert parse_retry_policy(None) is None
    assert retry_decision(None, 0, "NODE_LOST", NOW) == NoRetry(None)


def test_a_policy_is_read_with_duplicates_once() -> None:
    policy = parse_retry_policy({"max": 2, "on": ["OOM", "EXIT:137", "OOM"]})
    assert policy == RetryPolicy(2, ("OOM", "EXIT:137"))
    assert policy.as_json() == {"max": 2, "on": ["OOM", "EXIT:137"]}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ([], "retry:"),
        ({"max": 2}, "retry.on:"),
        ({"max": 21, "on": []}, "retry.max:"),
        ({"max": -1, "on": []}, "retry.max:"),
        ({"max": True, "on": []}, "retry.max:"),
        ({"max": "2", "on": []}, "retry.max:"),
        ({"max": 1, "on": ["NODE_LOST", "CRASH"]}, "retry.on[1]: unknown cause 'CRASH'"),
        ({"max": 1, "on": ["EXIT:abc"]}, "retry.on[0]: malformed exit code"),
        ({"max": 1, "on": ["EXIT:0"]}, "retry.on[0]: malformed exit code"),
        ({"max": 1, "on": ["EXIT:256"]}, "retry.on[0]: malformed exit code"),
        ({"max": 1, "on": [3]}, "retry.on[0]: must be a string"),
        ({"max": 1, "on": [], "every": 2}, "retry.every: unknown field"),
    ],
)
def test_a_bad_policy_names_the_field(raw: object, named: str) -> None:
    with pytest.raises(InvalidRetryPolicy, match="^" + re.escape(named)):
        parse_retry_policy(raw)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("NODE_LOST_OUTPUT_INCOMPLETE: val.csv-lines-mismatch", "NODE_LOST"),
        ("SERVER_RESTART_CONTAINER_MISSING_OUTPUT_INCOMPLETE: val.csv-missing", "SERVER_RESTART"),
        ("OOM_KILLED", "OOM"),
        ("STALLED: no log output and no progress for 60 s", "STALLED"),
        ("CONTAINER_EXIT_3", "EXIT:3"),
        ("CONTAINER_EXIT_137", "EXIT:137"),
        ("OUTPUT_INCOMPLETE: val.csv-missing", None),
        ("CANCELED_BY_USER", None),
        ("IMAGE_NOT_FOUND: image 'x' is not on node n1", None),
        ("COMPLETION_FAILED: boom", None),
        (None, None),
    ],
)
def test_the_cause_of_an_ending(error: str | None, cause: str | None) -> None:
    assert cause_of(error) == cause


def test_causes_match_what_judge_writes() -> None:
    """The codes come from the SPEC §5 judgement itself, not from a copy of its strings."""
    lost = judge(None, "val.csv-lines-mismatch", None, node_lost=True)
    missing = judge(None, "val.csv-lines-mismatch", None)
    oom = judge(ContainerEnd(137, oom_killed=True), None, "tail")
    exited = judge(ContainerEnd(3, oom_killed=False), None, "tail")
    assert [cause_of(o.error) for o in (lost, missing, oom, exited)] == [
        "NODE_LOST", "SERVER_RESTART", "OOM", "EXIT:3"
    ]  # fmt: skip


def test_a_listed_cause_is_retried_until_the_budget_is_spent() -> None:
    decisions = [retry_decision(POLICY, done, "EXIT:3", NOW, guard=NO_GUARD) for done in range(4)]
    assert decisions[:3] == [Retry(1, 3, "EXIT:3"), Retry(2, 3, "EXIT:3"), Retry(3, 3, "EXIT:3")]
    assert decisions[3] == NoRetry("not retried: retry budget spent (3/3)")
    assert Retry(2, 3, "NODE_LOST").sub_status == "retrying (2/3) after NODE_LOST"


def test_an_unlisted_cause_and_max_zero_are_not_retried() -> None:
    assert isinstance(retry_decision(POLICY, 0, "OOM", NOW), NoRetry)
    assert retry_decision(POLICY, 0, None, NOW) == NoRetry(None)
    zero = RetryPolicy(0, ("OOM",))
    assert retry_decision(zero, 0, "OOM", NOW) == NoRetry("not retried: retry budget spent (0/0)")


def test_the_thrash_guard_stops_early_and_forgets_old_failures() -> None:
    policy = RetryPolicy(10, ("EXIT:3",))
    guard = ThrashGuard(failures=3, window_s=600)
    two_recent = [NOW - timedelta(seconds=50), NOW - timedelta(seconds=20)]
    stopped = retry_decision(policy, 2, "EXIT:3", NOW, two_recent, guard)
    assert isinstance(stopped, NoRetry) and stopped.note is not None
    assert "thrash guard, 3 failures within 600 s" in stopped.note
    old = [NOW - timedelta(seconds=900), NOW - timedelta(seconds=20)]
    assert retry_decision(policy, 2, "EXIT:3", NOW, old, guard) == Retry(3, 10, "EXIT:3")
    assert retry_decision(policy, 2, "EXIT:3", NOW, two_recent, NO_GUARD) == Retry(3, 10, "EXIT:3")


def _ended(step1: StepState, checkpoint: int | None = 4) -> ModelSnapshot:
    return ModelSnapshot(step1, StepState.READY, total_epoch=10, val_interval=2,
                         checkpoint_epoch=checkpoint)  # fmt: skip


def test_a_retry_resumes_from_the_latest_checkpoint() -> None:
    decision = decide(_ended(StepState.STOPPED), None, RetryRequest(4, "retrying (1/3) after X"))
    assert isinstance(decision, Accepted)
    assert decision.step1 is StepState.IN_PROGRESS
    assert decision.new_job == NewJob(JobType.TRAIN, resume_from=4)
    assert not decision.reset_training and decision.last_error is None


def test_a_retry_without_a_checkpoint_restarts_from_scratch() -> None:
    decision = decide(_ended(StepState.ERROR, None), None, RetryRequest(None, "retrying"))
    assert isinstance(decision, Accepted)
    assert decision.new_job == NewJob(JobType.TRAIN, fresh_outputs=True)
    assert decision.reset_training


@pytest.mark.parametrize("step1", [StepState.IN_PROGRESS, StepState.COMPLETED, StepState.READY])
def test_a_retry_only_follows_an_ended_training(step1: StepState) -> None:
    assert isinstance(decide(_ended(step1), None, RetryRequest(4, "retrying")), Rejected)
