"""Automatic retry of a training job (issue 14, item 1): opt-in per model.

A model may carry `retry: {"max": N, "on": [causes]}`. When its training job ends for a listed
cause and the budget remains, a new attempt starts at once (resuming from the latest
checkpoint when there is one). Without a policy nothing changes: the ending stands, as the
seed has it. A user's cancel is never a cause: it is a command, not an ending.

Pure: the service gathers the earlier endings of the run, this module decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.completion import MISSING_INCOMPLETE, NODE_LOST_INCOMPLETE

NODE_LOST = "NODE_LOST"
SERVER_RESTART = "SERVER_RESTART"  # the container is missing and its outputs are incomplete
OOM = "OOM"
STALLED = "STALLED"  # also the prefix of the error a node ends a stalled job with
EXIT_PREFIX = "EXIT:"  # EXIT:<code>, the container's non-zero exit code
NAMED_CAUSES = (NODE_LOST, SERVER_RESTART, OOM, STALLED)
MAX_RETRIES = 20
_EXIT_CAUSE = re.compile(r"^EXIT:([1-9][0-9]{0,2})$")  # 1..255
_CONTAINER_EXIT = re.compile(r"^CONTAINER_EXIT_(-?[0-9]+)$")
OOM_KILLED = "OOM_KILLED"


class InvalidRetryPolicy(ValueError):
    """A policy the API refuses; the message names the bad field (`retry.on[1]: …`)."""


@dataclass(frozen=True)
class RetryPolicy:
    max: int  # retries after the first attempt, 0..MAX_RETRIES
    on: tuple[str, ...]  # the causes that are retried

    def covers(self, cause: str) -> bool:
        return cause in self.on

    def as_json(self) -> dict[str, object]:
        return {"max": self.max, "on": list(self.on)}


def parse_retry_policy(raw: object) -> RetryPolicy | None:
    """The model's `retry` field as stored or sent (None: no policy, the seed's behaviour)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidRetryPolicy('retry: must be an object {"max": N, "on": [causes]} or null')
    unknown = sorted(set(raw) - {"max", "on"})
    if unknown:
        raise InvalidRetryPolicy(f"retry.{unknown[0]}: unknown field (retry has max and on)")
    limit = raw.get("max")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_RETRIES:
        raise InvalidRetryPolicy(f"retry.max: must be an integer from 0 to {MAX_RETRIES}")
    causes = raw.get("on")
    if not isinstance(causes, list):
        raise InvalidRetryPolicy("retry.on: must be a list of causes")
    for index, cause in enumerate(causes):
        problem = cause_problem(cause)
        if problem is not None:
            raise InvalidRetryPolicy(f"retry.on[{index}]: {problem}")
    return RetryPolicy(limit, tuple(dict.fromkeys(causes)))  # duplicates once, order kept


def cause_problem(cause: object) -> str | None:
    """None when `cause` is one a policy may list, else what is wrong with it."""
    if not isinstance(cause, str):
        return "must be a string"
    exit_code = _EXIT_CAUSE.match(cause)
    if cause in NAMED_CAUSES or (exit_code and int(exit_code.group(1)) <= 255):
        return None
    if cause.startswith(EXIT_PREFIX):
        return f"malformed exit code {cause[:40]!r}: EXIT:<code> with a code from 1 to 255"
    names = ", ".join(NAMED_CAUSES)
    return f"unknown cause {cause[:40]!r} (one of {names}, EXIT:<code>)"


def cause_of(error: str | None) -> str | None:
    """The retry cause an ending's error code (`last_error`) stands for; None for endings
    that are never retried (incomplete outputs of a clean exit, launch failures, bounds)."""
    if not error:
        return None
    if error.startswith(NODE_LOST_INCOMPLETE):
        return NODE_LOST
    if error.startswith(MISSING_INCOMPLETE):
        return SERVER_RESTART
    if error == OOM_KILLED:
        return OOM
    if error.startswith(f"{STALLED}:"):
        return STALLED
    match = _CONTAINER_EXIT.match(error)
    if match:
        return f"{EXIT_PREFIX}{match.group(1)}"
    return None


@dataclass(frozen=True)
class ThrashGuard:
    """Stop retrying after `failures` endings within `window_s` (0 failures: never stops
    early). JOB_RETRY_THRASH_FAILURES / JOB_RETRY_THRASH_WINDOW_S, app/config.py."""

    failures: int = 4
    window_s: float = 600.0


@dataclass(frozen=True)
class Retry:
    number: int  # this retry's number in the run, 1..max
    max: int
    cause: str

    @property
    def sub_status(self) -> str:
        return f"retrying ({self.number}/{self.max}) after {self.cause}"


@dataclass(frozen=True)
class NoRetry:
    note: str | None  # said on the ended attempt; None: nothing to say (no policy, not listed)


def retry_decision(
    policy: RetryPolicy | None,
    retries_done: int,
    cause: str | None,
    now: datetime,
    earlier_failures: Sequence[datetime] = (),
    guard: ThrashGuard | None = None,
) -> Retry | NoRetry:
    """Retry the attempt that just ended for `cause`? `retries_done`: retries already made in
    this run (the run a user's run/restart/resume started); `earlier_failures`: when the run's
    earlier attempts ended (this one, ending `now`, is counted on top)."""
    if policy is None or cause is None:
        return NoRetry(None)
    if not policy.covers(cause):
        return NoRetry(f"not retried: {cause} is not in the policy's causes")
    if retries_done >= policy.max:
        return NoRetry(f"not retried: retry budget spent ({retries_done}/{policy.max})")
    guard = guard or ThrashGuard()
    if guard.failures > 0:
        since = now - timedelta(seconds=guard.window_s)
        recent = 1 + sum(1 for ended in earlier_failures if ended >= since)
        if recent >= guard.failures:
            return NoRetry(
                f"not retried: thrash guard, {recent} failures within {guard.window_s:g} s "
                f"(JOB_RETRY_THRASH_FAILURES={guard.failures})"
            )
    return Retry(retries_done + 1, policy.max, cause)
