"""The whole chaos suite on its own stack, then a table (`make chaos`; docs/chaos.md).

    python -m tests.chaos                       # every scenario, 150 runs at once in "burst"
    python -m tests.chaos --burst 40            # a smaller burst
    python -m tests.chaos --only worker_sigkill,node_lost
    python -m tests.chaos --subset              # what `make test` runs (tests/chaos/test_chaos.py)

Exit status 1 when any scenario found an invariant violation.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from tests.chaos.harness import Stack
from tests.chaos.scenarios import SCENARIOS, Result


def run_suite(names: list[str], subset: bool, burst: int) -> list[Result]:
    results: list[Result] = []
    reported: set[str] = set()
    stack = Stack().start()
    try:
        for name in names:
            scenario, full_jobs, subset_jobs = SCENARIOS[name]
            jobs = burst if name == "burst" else (subset_jobs if subset else full_jobs) or full_jobs
            t0 = time.monotonic()
            first_job = stack.next_job_id()
            print(f"--- {name} ({jobs} jobs)", flush=True)
            try:
                result = scenario(stack, jobs)
            except Exception as exc:
                traceback.print_exc()
                result = Result(name, "?", jobs, [f"[scenario failed] {exc!r}"])
            # The invariants cover every model of the stack: a violation is reported once,
            # in the scenario at whose end it was first seen.
            result.violations = [v for v in result.violations if v not in reported]
            reported.update(result.violations)
            result.outcomes = stack.job_counts(since_id=first_job)
            results.append(result)
            for violation in result.violations:
                print(f"    {violation}", flush=True)
            print(f"    done in {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        logs = stack.base
        if any(r.violations for r in results):
            for child in [*stack.workers.values(), stack.api]:
                if child is not None and "Traceback" in child.log():
                    print(f"--- {child.name} log (tail) in {logs} ---\n{child.log()[-3000:]}")
        stack.stop()
    return results


def table(results: list[Result]) -> str:
    head = ("scenario", "faults", "jobs", "outcomes", "violations", "recovery s")
    rows = [
        (
            r.scenario,
            r.faults,
            str(r.jobs),
            " ".join(f"{status} {n}" for status, n in sorted(r.outcomes.items())),
            str(len(r.violations)),
            "-" if r.recovery_s is None else f"{r.recovery_s:.1f}",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--subset", action="store_true", help="the bounded subset only")
    parser.add_argument("--burst", type=int, default=SCENARIOS["burst"][1], help="runs at once")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or [
        n for n, (_, _, subset_jobs) in SCENARIOS.items() if not args.subset or subset_jobs
    ]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    results = run_suite(names, args.subset, args.burst)
    print(table(results))
    return 1 if any(r.violations for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
