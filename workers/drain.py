"""Draining a node: it takes no new job and finishes the ones it runs.

The state is in the database, `tb_node.drain_dttm`: set by `POST /api/nodes/<node>/drain` or
`trainyard drain NODE` (which calls the same service, app/services/nodes.py), cleared by
`undrain`. It takes effect without a restart. The older flag file `$TRAINYARD_HOME/drain-<node>`
stays an alias, for a node whose operator has only its disk: while it exists the node drains
too (its heartbeat reports it, so the API shows it).

Two layers:
- the guarantee: `claim_job` refuses a job while the node is drained (workers/launcher.py).
  It reads the state under the node's row lock, which the drain write takes as well, so no
  claim that starts after a drain was answered takes a job. A refused launch leaves the job
  QUEUED and unclaimed; the sweep re-publishes it after REQUEUE_AFTER_S and another node
  takes it. Jobs this node already holds (claimed, running, stopping, completing) are
  untouched.
- the courtesy: `DrainWatcher` stops this worker consuming the launch queues while it is
  drained (Celery's cancel_consumer / add_consumer, sent to itself), so launches go straight
  to the other nodes instead of waiting for that re-publish.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import messaging
from app.db.models import Node
from workers.context import WorkerContext
from workers.periodic import Periodic
from workers.settings import NodeSettings

log = logging.getLogger(__name__)


class DrainWatcher(Periodic):
    """The claim checks the drain anyway: when the broker or the database is away, the next
    check tries again."""

    def __init__(
        self, celery: Any, ctx: WorkerContext, hostname: str, launch_queues: list[str]
    ) -> None:
        super().__init__("trainyard-drain", self.check, ctx.node.supervise_interval_s)
        self.celery = celery
        self.ctx = ctx
        self.node = ctx.node
        self.hostname = hostname
        self.launch_queues = launch_queues
        self.consuming = True

    def check(self) -> None:
        with self.ctx.db() as session:
            draining = is_draining(session, self.node)
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


def is_draining(session: Session, node: NodeSettings) -> bool:
    """Drained through the API / CLI (the database) or by the legacy flag file."""
    if node.drain_file.exists():
        return True
    drained_at = session.scalar(select(Node.drain_dttm).where(Node.name == node.node))
    return drained_at is not None
