"""Draining a node: it takes no new job and finishes the ones it runs.

The flag is a file, `$TRAINYARD_HOME/drain-<node>` (`trainyard drain NODE` / `undrain NODE`),
so it works without a restart and without the database or broker being up.

Two layers:
- the guarantee: `claim_job` refuses a job while the flag exists (workers/launcher.py). A
  refused launch leaves the job QUEUED and unclaimed; the sweep re-publishes it after
  REQUEUE_AFTER_S and another node takes it. Jobs this node already holds (claimed,
  running, stopping, completing) are untouched.
- the courtesy: `DrainWatcher` stops this worker consuming the launch queues while the flag
  exists (Celery's cancel_consumer / add_consumer, sent to itself), so launches go straight
  to the other nodes instead of waiting for that re-publish.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from app import messaging
from workers.settings import NodeSettings

log = logging.getLogger(__name__)


class DrainWatcher:
    def __init__(
        self, celery: Any, node: NodeSettings, hostname: str, launch_queues: list[str]
    ) -> None:
        self.celery = celery
        self.node = node
        self.hostname = hostname
        self.launch_queues = launch_queues
        self.consuming = True
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="trainyard-drain", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.check()
            except Exception as exc:  # the broker may be away; the claim check still holds
                log.warning("drain watcher: %s", exc)
            self.stopping.wait(self.node.supervise_interval_s)

    def check(self) -> None:
        draining = self.node.draining
        if draining and self.consuming:
            for queue in self.launch_queues:
                self._control("cancel_consumer", queue)
            self.consuming = False
            log.info("node %s is draining: no new jobs; running jobs finish", self.node.node)
        elif not draining and not self.consuming:
            for queue in self.launch_queues:
                self._control("add_consumer", queue)
            self.consuming = True
            log.info("node %s is no longer draining: taking new jobs again", self.node.node)

    def _control(self, command: str, queue: str) -> None:
        replies = getattr(self.celery.control, command)(
            queue, destination=[self.hostname], reply=True, timeout=5
        )
        if not replies:  # not applied: the next check tries again
            raise RuntimeError(f"{command} {queue}: no reply from {self.hostname}")


def launch_queues(queues: list[str]) -> list[str]:
    return [q for q in queues if q in (messaging.QUEUE_LAUNCH_CPU, messaging.QUEUE_LAUNCH_GPU)]
