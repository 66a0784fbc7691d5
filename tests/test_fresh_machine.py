"""A fresh machine runs `make test` / `make images`: every program the project calls is either
part of a bare Debian 12, the virtualenv or Python, or listed in scripts/services.sh's
`provides` table (which installs it).

The scan is deliberately simple and explicit: the command words of the shell scripts, .ci/run
and the Makefile's recipes, and the programs Python code hands to subprocess or
shutil.which. A word nobody has classified fails the test: add it to BASE, VIRTUALENV or
OPTIONAL below, or to services.sh's table with the Debian package that provides it.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"
SHELL_FILES = [*sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci" / "run"]
PYTHON_DIRS = ["app", "workers", "tests", "bench", "trainer"]

# In every Debian 12 (packages of priority "required", and sudo, which the README asks for).
BASE = {
    "apt-get", "awk", "basename", "cat", "chmod", "chown", "chroot", "cp", "cut", "date",
    "dirname", "du", "env", "find", "grep", "gzip", "head", "hostname", "id", "install", "ldd",
    "ln", "ls", "mkdir", "mktemp", "mount", "mv", "nproc", "rm", "sed", "seq", "sh", "bash",
    "sleep", "sort", "sha256sum", "su", "sudo", "tail", "tar", "tee", "touch", "tr", "true",
    "false", "umount", "uname", "wc", "which", "xargs",
    "setpriv",  # util-linux (essential): devstack's parent-death signal
    "dmesg",  # util-linux (essential): the hostile test names kernel OOM kills
}  # fmt: skip
# Python itself, or installed into the virtualenv by `pip install -e '.[dev]'`.
VIRTUALENV = {"python", "python3", "pip", "celery", "gunicorn", "trainyard", "pytest", "ruff"}
# Looked for and skipped when absent, with a message saying how to get it.
OPTIONAL = {
    "py-spy",  # bench/api_bench.py's profile (pip install py-spy)
    "busybox",  # tests/runtime: a test image when trainyard/base:bookworm is missing
}
SHELL_WORDS = {
    # builtins and keywords: not programs
    "break", "case", "cd", "command", "continue", "declare", "do", "done", "echo", "elif",
    "else", "esac", "eval", "exec", "exit", "export", "fi", "for", "if", "in", "kill", "local",
    "printf", "pwd", "read", "return", "set", "shift", "source", "test", "then", "trap",
    "type", "umask", "unset", "until", "wait", "while", "[", "[[", "]]", ":", "!", "{", "}",
}  # fmt: skip
# Words after which the next word is again a command (as_root is scripts' sudo wrapper).
PREFIXES = {"if", "then", "do", "else", "elif", "while", "until", "!", "{", "exec", "time",
            "sudo", "as_root", "timeout", "env", "nohup"}  # fmt: skip
PROGRAM = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]*")


def _without_heredocs_and_comments(text: str) -> str:
    lines, out, end = text.splitlines(), [], None
    for line in lines:
        if end is not None:
            end = None if line.strip() == end else end
            continue
        line = re.sub(r"(^|\s)#.*$", "", line)
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if heredoc:
            end = heredoc.group(1)
        out.append(line)
    text = "\n".join(out).replace("\\\n", " ")
    text = re.sub(r"\$\(\([^()]*\)\)", "0", text)  # $(( arithmetic ))
    text = re.sub(r"\b\w+\+?=\([^()]*\)", "ARRAY=", text)  # array=(words) and array+=(words)
    while re.search(r"\$\{[^{}]*\}", text):
        text = re.sub(r"\$\{[^{}]*\}", "VALUE", text)  # ${parameter expansions}
    return text


def shell_commands(text: str) -> set[str]:
    """The programs a shell text runs: the first word of each simple command, including those
    inside $( ), after sudo-like prefixes and inside `sh|bash|su ... -c "SCRIPT"`."""
    text = _without_heredocs_and_comments(text)
    functions = set(re.findall(r"([A-Za-z_][\w-]*)\s*\(\)\s*\{", text))
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>\n")
    lexer.whitespace = " \t\r"
    lexer.commenters = ""
    found: set[str] = set()
    tokens = list(lexer)
    at_start, skip_rest, index = True, False, 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token and set(token) <= set(";&|()<>\n"):
            if set(token) & set(";|()\n") or token in ("&", "&&"):
                at_start, skip_rest = True, False  # a new command follows
            else:
                index += 1  # a redirection: its target is no command
            continue
        if not at_start or skip_rest:
            continue
        if re.fullmatch(r"[A-Za-z_]\w*=.*", token, re.S):
            continue  # VAR=value before the command
        if token in ("for", "case", "select", "function"):
            skip_rest = True
            continue
        if token in PREFIXES:
            continue
        at_start = False
        if token.startswith("/make/"):
            continue  # a make variable: $(BIN)/... (the virtualenv), $(PYTHON), $(COMPOSE)
        name = Path(token).name if token.startswith("/") else token
        if name in SHELL_WORDS or name in functions or not PROGRAM.fullmatch(name):
            continue
        found.add(name)
        if name in ("sh", "bash", "su"):
            rest = tokens[index : index + 4]
            if "-c" in rest and rest.index("-c") + 1 < len(rest):
                found |= shell_commands(rest[rest.index("-c") + 1])
    return found


def makefile_commands(text: str) -> set[str]:
    lines = text.replace("\\\n", " ").splitlines()
    recipes = [line[1:].lstrip("@-") for line in lines if line.startswith("\t")]
    recipes += re.findall(r"\$\(shell ([^)]*)\)", text)
    script = "\n".join(recipes).replace("$$", "$")
    # $(VAR) is make's: the venv's programs ($(BIN)/...) or Python ($(PYTHON)).
    return shell_commands(re.sub(r"\$\((\w+)\)", r"/make/\1", script))


def python_commands(path: Path) -> set[str]:
    """argv[0] of subprocess calls with a literal list, shutil.which("name") arguments, and
    programs named by their path ("/usr/bin/chromium", which Playwright drives)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(re.findall(r"^/usr/s?bin/([\w.+-]+)$", node.value))
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if name == "which" and isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.add(first.value)
        if name in ("run", "Popen", "call", "check_call", "check_output") and isinstance(
            first, ast.List | ast.Tuple
        ):
            words = [e.value if isinstance(e, ast.Constant) else None for e in first.elts]
            if words and isinstance(words[0], str):
                found.add(Path(words[0]).name)
                if words[0] in ("sh", "bash", "su") and "-c" in words:
                    script = words[words.index("-c") + 1 :][:1]
                    if script and isinstance(script[0], str):
                        found |= shell_commands(script[0])
    return found


def services_provides() -> set[str]:
    """The CHECK names of services.sh's `provides` and `docker_provides` tables."""
    text = SERVICES.read_text()
    tables = re.findall(r"^(?:docker_)?provides=\((.*?)^\)", text, re.M | re.S)
    assert tables, "scripts/services.sh has no provides=( ... ) table"
    entries = re.findall(r"^\s*([^\s#:]+):\S+", "\n".join(tables), re.M)
    return {entry for entry in entries if not entry.startswith("/")}


def used_programs() -> dict[str, set[str]]:
    """program → the files that call it."""
    used: dict[str, set[str]] = {}

    def add(programs: set[str], where: Path) -> None:
        for program in programs:
            used.setdefault(program, set()).add(str(where.relative_to(ROOT)))

    for path in SHELL_FILES:
        add(shell_commands(path.read_text()), path)
    add(makefile_commands((ROOT / "Makefile").read_text()), ROOT / "Makefile")
    for folder in PYTHON_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            add(python_commands(path), path)
    return used


def test_every_program_the_project_calls_is_provided() -> None:
    provided = services_provides() | BASE | VIRTUALENV | OPTIONAL
    unprovided = {
        program: sorted(files)
        for program, files in used_programs().items()
        if program not in provided
    }
    assert unprovided == {}, (
        "called but not installed by scripts/services.sh (add CHECK:PACKAGE to its provides "
        f"table, or classify it in {Path(__file__).name}): {unprovided}"
    )


def test_the_scan_sees_what_the_scripts_call() -> None:
    """The scan is not vacuous: it finds the programs we know the scripts run."""
    used = used_programs()
    for program, where in [
        ("debootstrap", "scripts/build-images.sh"),
        ("docker", "scripts/build-app-image.sh"),
        ("psql", "scripts/services.sh"),  # inside `su postgres -c "psql ..."`
        ("pg_ctlcluster", "scripts/services.sh"),  # after the as_root prefix
        ("redis-cli", "scripts/services.sh"),
        ("make", ".ci/run"),
        ("wrk", "bench/api_bench.py"),
        ("make", "tests/e2e/test_make_run.py"),
        ("chromium", "tests/e2e/conftest.py"),
    ]:
        assert where in used.get(program, set()), f"{program} not seen in {where}"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("a=$(b --x) && c | d; e", {"b", "c", "d", "e"}),
        ('if ! f "$x"; then g; fi', {"f", "g"}),
        ("X=1 as_root h arg >/dev/null 2>&1", {"h"}),
        ('a=(p q) a+=(r "$s"); [ -n "${a[*]}" ] && t', {"t"}),
        ('echo "${1:-}" $((SECONDS - 1)); k() { l; }; k', {"l"}),
        ("cat <<'PY'\nimport sys\nPY\nm", {"cat", "m"}),
        ('su postgres -c "psql -qc 1"', {"su", "psql"}),
        ("for x in a b; do n \\\n  --flag; done  # o", {"n"}),
    ],
)
def test_shell_scan(script: str, expected: set[str]) -> None:
    assert shell_commands(script) == expected
