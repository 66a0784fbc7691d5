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
