"""Nothing but the gate (app/jobfiles.py) touches a job's files (issue 10, docs/security.md).

The rule, kept simple so it stays true: a module of app/ or workers/ that knows where job
outputs live — it imports app.domain.layout or app.jobfiles, mentions `output_root` (or
`scratch_root`: a job's scratch folder is its to write too), or reads metric files
(app/metrics) — calls none of the file-system functions below. It hands JobPaths
to app.jobfiles instead, which opens beneath the root without following links. Descriptors the
gate returned may be used (`os.fstat(handle.fileno())`, `send_file(handle)`): no path there.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GATE = "app/jobfiles.py"

#: Calls that touch the file system through a path, whatever the receiver (Path or os).
FORBIDDEN = frozenset(
    {
        "open",  # builtin open() and Path.open()
        "read_text",
        "read_bytes",
        "write_text",
        "write_bytes",
        "iterdir",
        "listdir",
        "scandir",
        "walk",
        "glob",
        "rglob",
        "stat",
        "lstat",
        "exists",
        "is_file",
        "is_dir",
        "is_symlink",
        "chown",
        "lchown",
        "chmod",
        "mkdir",
        "makedirs",
        "rmdir",
        "unlink",
        "rename",
        "symlink_to",
        "touch",
        "mkstemp",
        "send_file",
    }
)
#: `os.replace` / `os.remove` / `shutil.*` are path calls; `str.replace` or a runtime's
#: `remove(container)` are not.
FORBIDDEN_QUALIFIED = frozenset(
    {("os", "replace"), ("os", "remove"), ("shutil", "move"), ("shutil", "rmtree")}
)

#: Modules in scope that may still make such a call, and why it is not a job file.
ALLOWED: dict[tuple[str, str], str] = {
    ("app/api/results.py", "send_file"): "streams the descriptor jobfiles.open_file returned",
    # In scope for its scratch folder (through the gate); these calls are on its own state
    # folder (records, locks, logs) and on the mount sources, which no job names.
    **{
        ("workers/runtime/process.py", call): "the process runtime's own state folder"
        for call in ("mkdir", "is_dir", "open", "glob", "unlink", "read_text", "write_text",
                     "os.replace")
    },
}


def _knows_job_outputs(path: Path, tree: ast.AST, source: str) -> bool:
    if path.relative_to(REPO).as_posix().startswith("app/metrics/"):
        return True
    if "output_root" in source or "scratch_root" in source:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module in ("app.domain.layout", "app.jobfiles"):
                return True
            if node.module == "app.domain" and "layout" in names:
                return True
            if node.module == "app" and "jobfiles" in names:
                return True
        if isinstance(node, ast.Import) and any(
            a.name in ("app.domain.layout", "app.jobfiles") for a in node.names
        ):
            return True
    return False


def _file_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in FORBIDDEN:
            found.append((node.lineno, func.id))
        elif isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id == "jobfiles":
                continue  # the gate itself, e.g. jobfiles.rename
            if func.attr in FORBIDDEN:
                found.append((node.lineno, func.attr))
            elif isinstance(func.value, ast.Name) and (func.value.id, func.attr) in (
                FORBIDDEN_QUALIFIED
            ):
                found.append((node.lineno, f"{func.value.id}.{func.attr}"))
    return sorted(found)


def _modules() -> list[Path]:
    return sorted(p for top in ("app", "workers") for p in (REPO / top).rglob("*.py"))


def test_only_the_gate_touches_job_files() -> None:
    offences = []
    scanned = 0
    for path in _modules():
        name = path.relative_to(REPO).as_posix()
        if name == GATE:
            continue
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        if not _knows_job_outputs(path, tree, source):
            continue
        scanned += 1
        for line, call in _file_calls(tree):
            if (name, call) not in ALLOWED:
                offences.append(f"{name}:{line}: {call}(…) — go through app.jobfiles")
    assert scanned >= 15, f"only {scanned} modules in scope: is the rule still looking?"
    assert offences == [], "\n".join(offences)


def test_the_rule_catches_a_direct_access() -> None:
    """The scan itself works: the code this issue replaced would be flagged."""
    before = (
        "from app.domain import layout\n"
        "def f(settings, uid):\n"
        "    d = layout.split_dir(settings.output_root, uid)\n"
        "    if (d / 'train.txt').exists():\n"
        "        return (d / 'train.txt').read_text()\n"
        "    os.chown(d, 1000, 1000)\n"
        "    with open(d / 'x') as h: pass\n"
    )
    tree = ast.parse(before)
    assert _knows_job_outputs(REPO / "app/x.py", tree, before)
    assert [call for _, call in _file_calls(tree)] == ["exists", "read_text", "chown", "open"]
