"""A node's background loop: one daemon thread that runs a step every interval, until stopped.

The heartbeat, the log collector and the drain watcher are such loops. A step that raises
(a database restart, a broker away) is logged and the loop goes on: the next interval tries
again, so no passing outage ends a node's background work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs `step` every `interval_s` seconds in a thread named `name`: at once on `start`,
    or only after the first interval when `wait_first` (a step `start`'s caller already ran)."""

    def __init__(
        self, name: str, step: Callable[[], object], interval_s: float, *, wait_first: bool = False
    ) -> None:
        self.name = name
        self.step = step
        self.interval_s = interval_s
        self.wait_first = wait_first
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stopping.set()
        self.thread.join(timeout_s)

    def _run(self) -> None:
        if self.wait_first and self.stopping.wait(self.interval_s):
            return
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception:
                log.exception("%s failed; trying again next interval", self.name)
            self.stopping.wait(self.interval_s)
