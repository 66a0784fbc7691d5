"""Only workers/container_writes.py writes a job's container columns (issue 13, item 5), as only
app/services/status_writes.py writes status: no module of app/ or workers/ assigns them,
adds to them, or names them in an UPDATE's `.values(…)` or a `Job(…)` constructor."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OWNER = "workers/container_writes.py"

#: The columns behind app/domain/container_phases.py, and the bounded-retry counters of the
#: claim and the judgement.
COLUMNS = frozenset(
    {
        "node",
        "claimed_dttm",
        "gpu_ids",
        "container_ended_dttm",
        "container_exit_code",
        "container_missing",
        "oom_killed",
        "log_tail",
        "node_lost",
        "container_gone_dttm",
        "launch_attempts",
        "completion_attempts",
        "last_attempt_dttm",
        "last_attempt_error",
        "launch_error",
    }
)

#: Writes of a same-named attribute that is not a job's, and why.
ALLOWED: dict[tuple[str, str], str] = {
    ("workers/heartbeat.py", "gpu_ids"): "tb_node.gpu_ids: what the node declares",
}


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if (
                    isinstance(sub, ast.Attribute)
                    and sub.attr in COLUMNS
                    # `self.node = node`: another class's own field (a runtime, the drain)
                    and not (isinstance(sub.value, ast.Name) and sub.value.id == "self")
                ):
                    found.append((node.lineno, sub.attr))
        if isinstance(node, ast.Call):
            func = node.func
            named = (isinstance(func, ast.Attribute) and func.attr == "values") or (
                isinstance(func, ast.Name) and func.id == "Job"
            )
            if named:
                found += [(node.lineno, k.arg) for k in node.keywords if k.arg in COLUMNS]
                # `.values({"node": …})`: the columns as a dict's keys
                found += [
                    (node.lineno, key.value)
                    for arg in node.args
                    if isinstance(arg, ast.Dict)
                    for key in arg.keys
                    if isinstance(key, ast.Constant) and key.value in COLUMNS
                ]
            # `setattr(job, "node", …)`
            if isinstance(func, ast.Name) and func.id == "setattr" and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and name.value in COLUMNS:
                    found.append((node.lineno, name.value))
    return sorted(found)


def test_only_container_writes_writes_the_container_columns() -> None:
    offences = []
    for path in sorted(p for top in ("app", "workers") for p in (REPO / top).rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        if name == OWNER or name.startswith("app/db/migrations/"):
            continue
        for line, column in _writes(ast.parse(path.read_text(encoding="utf-8"))):
            if (name, column) not in ALLOWED:
                offences.append(f"{name}:{line}: writes {column} — use {OWNER}")
    assert offences == [], "\n".join(offences)


def test_the_owner_writes_every_column() -> None:
    """The scan looks at the right names: the owner writes each of them."""
    written = {c for _, c in _writes(ast.parse((REPO / OWNER).read_text(encoding="utf-8")))}
    assert written == COLUMNS


def test_the_rule_catches_the_writes_it_replaced() -> None:
    before = (
        "def claim(job, me):\n"
        "    job.node = me\n"
        "    job.claimed_dttm = job.last_attempt_dttm = now()\n"
        "    job.launch_attempts += 1\n"
        "    session.execute(update(Job).values(last_attempt_error='x'))\n"
        "    self.node = me\n"
        "    session.execute(update(Job).values({'container_gone_dttm': now()}))\n"
        "    setattr(job, 'launch_error', 'x')\n"
    )
    assert [c for _, c in _writes(ast.parse(before))] == [
        "node",
        "claimed_dttm",
        "last_attempt_dttm",
        "launch_attempts",
        "last_attempt_error",
        "container_gone_dttm",
        "launch_error",
    ]
