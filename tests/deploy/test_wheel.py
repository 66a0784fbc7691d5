"""A built wheel runs on its own: installed into a fresh virtualenv outside the checkout, its
`trainyard migrate` brings an empty PostgreSQL database to head and `trainyard worker --check`
passes with the process runtime, which finds the reference trainer inside the installation.

The wheel is built (pip wheel) from a copy of the files it is made of, so the checkout gets no
build/ folder. Its dependencies are not downloaded again: a .pth line lends the fresh venv the
project venv's site-packages, after its own (a .pth line adds a folder; .pth files inside it,
such as the editable install's finder, are not run, so the checkout stays unimportable).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import TEST_BROKER_URL, TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parents[2]
WHEEL_SOURCES = ["pyproject.toml", "README.md", "app", "workers", "trainer"]


def _run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in WHEEL_SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    dist = tmp_path_factory.mktemp("dist")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)]
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (found,) = dist.glob("trainyard-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed, outside the checkout."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(home)])
    assert made.returncode == 0, made.stderr
    python = home / "bin" / "python"
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)]
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    own = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
               .stdout.strip())  # fmt: skip
    (own / "zz-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return home


def _drop_database(conninfo: str, name: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database of its own, created empty and dropped afterwards (the role has createdb)."""
    conninfo = TEST_DATABASE_URL.replace("postgresql+psycopg://", "postgresql://")
    name = conninfo.rsplit("/", 1)[1].split("?")[0] + "_wheel"
    _drop_database(conninfo, name)  # a leftover of an interrupted run
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield TEST_DATABASE_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        _drop_database(conninfo, name)


def test_installed_wheel_migrates_and_its_worker_checks_out(
    venv: Path, empty_database: str, tmp_path: Path
) -> None:
    bin_dir = venv / "bin"
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DATABASE_URL": empty_database,
        "BROKER_URL": TEST_BROKER_URL,
        "TRAINYARD_HOME": str(tmp_path / "home"),
        "WORKER_RUNTIME": "process",
        "NODE_NAME": "wheel-node",
    }  # no PYTHONPATH: nothing but the venv is importable
    where = _run(
        [str(bin_dir / "python"), "-c",
         "import app, workers, trainer; print(app.__file__); print(trainer.TRAIN_SCRIPT)"],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    app_file, train_script = (Path(line) for line in where.stdout.split())
    assert app_file.is_relative_to(venv), f"app comes from {app_file}, not the wheel"
    assert train_script.is_relative_to(venv) and train_script.is_file()
    assert not (venv / "lib").joinpath("alembic.ini").exists()

    # A worker refuses an unmigrated database, naming the fix.
    before = _run([str(bin_dir / "trainyard"), "worker", "--check"], cwd=tmp_path, env=env)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "FAIL  database" in before.stdout and "trainyard migrate" in before.stdout

    migrated = _run([str(bin_dir / "trainyard"), "migrate"], cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "database at head" in migrated.stdout

    checked = _run([str(bin_dir / "trainyard"), "worker", "--check"], cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok    database" in checked.stdout and "ok    broker" in checked.stdout
    assert f"ok    runtime: process, trainer {train_script}" in checked.stdout

    # The trainer the process runtime would start runs from the installation.
    trainer = _run([str(bin_dir / "python"), str(train_script), "--help"], cwd=tmp_path, env=env)
    assert trainer.returncode == 0 and "--job-type" in trainer.stdout, trainer.stderr
