"""Constants and helpers shared by the runtime tests (imported, unlike conftest fixtures)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

SESSION = uuid.uuid4().hex[:8]
INSTALLATION = f"test-{SESSION}"  # the runtimes' installation id in these tests
TEST_LABEL = "trainyard.test-session"
BASE_IMAGE = "trainyard/base:bookworm"
BUSYBOX_IMAGE = "trainyard/test-busybox:latest"
# Applets the tests' shell commands use.
BUSYBOX_APPLETS = ("sh", "sleep", "echo", "cat", "head", "tr", "id", "touch", "true", "seq", "ls")


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; return its value, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def read_logs_to_the_end(
    runtime: Any, name: str, timeout: float = 60
) -> tuple[bytes, bytes, Any]:
    """Follow a running job's log with `logs_since` until it has ended and nothing more comes:
    (everything read, what had been read while it still ran, the last cursor). Fails after
    timeout seconds."""
    deadline = time.monotonic() + timeout
    read, cursor, while_running = b"", None, b""
    while True:
        assert time.monotonic() < deadline, f"{name} still writing after {timeout}s: {read!r}"
        running = not runtime.inspect(name).ended
        got = runtime.logs_since(name, cursor)
        read, cursor = read + got.data, got.cursor
        if running:
            while_running = read
        elif not got.data:
            return read, while_running, cursor
        time.sleep(0.05)
