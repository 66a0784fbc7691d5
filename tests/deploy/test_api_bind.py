"""`trainyard api` (gunicorn with app/gunicorn_conf.py) refuses a public bind without API_TOKEN
unless ALLOW_INSECURE_NO_TOKEN=1 says otherwise, loudly (app/serve.py, issue 10 item 5).

Starts real gunicorn processes on a free port: run under the shared heavy lock.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import load_settings
from app.devstack import _gunicorn_no_control_socket
from app.serve import InsecureBind, check_bind, is_loopback
from tests.conftest import TEST_BROKER_URL, TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("API_TOKEN", "ALLOW_INSECURE_NO_TOKEN", "GUNICORN_CMD_ARGS", "PORT")
    }
    env.update(DATABASE_URL=TEST_DATABASE_URL, BROKER_URL=TEST_BROKER_URL, **extra)
    return env


def _api(bind: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "app.cli", "api", "--bind", bind, "--workers", "1"]
    return subprocess.Popen(
        [*command, *_gunicorn_no_control_socket()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 (say, no broker) is an answer too
    except OSError:
        return False


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.parametrize("bind", ["0.0.0.0", "[::]"])
def test_a_public_bind_without_a_token_refuses_to_start(
    bind: str, started: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    proc = _api(f"{bind}:{port}", _env())
    started.append(proc)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert "refusing to serve the API on" in output and "without API_TOKEN" in output
    assert "Listening at" not in output
    assert not _answers(port)


@pytest.mark.parametrize(
    ("bind", "extra", "insecure"),
    [
        ("0.0.0.0", {"ALLOW_INSECURE_NO_TOKEN": "1"}, True),
        ("0.0.0.0", {"API_TOKEN": "s3cret"}, False),
        ("127.0.0.1", {}, False),
    ],
)
def test_it_starts_with_a_token_on_loopback_or_with_the_opt_out(
    bind: str, extra: dict[str, str], insecure: bool, started: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    proc = _api(f"{bind}:{port}", _env(**extra))
    started.append(proc)
    deadline = time.monotonic() + 60
    while not _answers(port):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the API did not answer within 60 s"
        time.sleep(0.2)
    proc.terminate()
    output, _ = proc.communicate(timeout=30)
    assert ("INSECURE: ALLOW_INSECURE_NO_TOKEN=1" in output) == insecure, output


def test_which_addresses_count_as_loopback() -> None:
    for local in (("127.0.0.1", 80), ("127.1.2.3", 1), ("::1", 1), ("localhost", 1), "/run/a"):
        assert is_loopback(local), local
    for public in (("0.0.0.0", 1), ("", 1), ("::", 1), ("10.0.0.5", 1), ("api.example", 1), 3):
        assert not is_loopback(public), public


def test_check_bind_needs_a_token_for_any_public_address(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test-bind")
    base = load_settings().with_overrides(api_token=None, allow_insecure_no_token=False)
    check_bind([("127.0.0.1", 8000), "/tmp/api.sock"], base, log)
    with pytest.raises(InsecureBind, match=r"10\.0\.0\.5:8000"):
        check_bind([("127.0.0.1", 8000), ("10.0.0.5", 8000)], base, log)
    check_bind([("0.0.0.0", 8000)], base.with_overrides(api_token="t"), log)
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        check_bind([("0.0.0.0", 8000)], base.with_overrides(allow_insecure_no_token=True), log)
    assert "INSECURE" in caplog.text and "0.0.0.0:8000" in caplog.text
