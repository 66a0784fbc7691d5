"""The node supervisor: a thread beside the Celery worker that notices containers ending.

No Celery task waits for a container. This loop waits instead: on the runtime's exit events
(Docker events, resumed with `since` so a restart misses nothing), with a periodic
`reconcile_node` as the fallback that also re-attaches after a restart, records progress and
live metrics, and runs the cluster-wide sweep when its turn comes.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select

from app.db.models import Job
from app.domain.timefmt import utcnow
from app.services.queries import held_by
from workers.context import WorkerContext
from workers.ending import observe_end
from workers.heartbeat import Heartbeat, beat
from workers.logcollector import LogCollector
from workers.periodic import Periodic
from workers.reconcile import reconcile_node, sweep
from workers.scratch import enforce_scratch_limit

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="trainyard-supervisor", daemon=True)
        self.heartbeat = Heartbeat(ctx)
        self.logs = LogCollector(ctx)
        # Its own thread: measuring a scratch folder of many files must not delay noticing
        # containers that end.
        every = ctx.node.scratch_check_interval_s
        self.scratch = Periodic("trainyard-scratch", lambda: enforce_scratch_limit(ctx), every)

    def start(self) -> None:
        """Reconcile once before returning, so the node's view is settled before its Celery
        consumer takes any message; then watch in the background."""
        self._guard(lambda: beat(self.ctx, started=True))
        self.heartbeat.start()
        self._guard(
            lambda: log.info("startup reconcile: %s", reconcile_node(self.ctx, startup=True))
        )
        self.thread.start()
        self.logs.start()
        self.scratch.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stopping.set()
        self.thread.join(timeout_s)
        self.logs.stop(timeout_s)
        self.scratch.stop(timeout_s)
        self.heartbeat.stop()

    def _run(self) -> None:
        ctx = self.ctx
        since = utcnow()
        next_poll = next_sweep = time.monotonic()
        while not self.stopping.is_set():
            checked_at = utcnow()
            ended = self._guard(
                lambda since=since: ctx.runtime.wait_for_exit_events(
                    since, ctx.node.supervise_interval_s
                )
            )
            since = checked_at
            for name in ended or []:
                self._guard(lambda name=name: self._container_ended(name))
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + ctx.node.supervise_interval_s
                self._guard(lambda: reconcile_node(ctx))
            if now >= next_sweep:
                next_sweep = now + ctx.node.sweep_interval_s
                self._guard(lambda: sweep(ctx))
            if ended is None:  # the runtime failed; don't spin
                self.stopping.wait(ctx.node.supervise_interval_s)

    def _container_ended(self, name: str) -> None:
        ctx = self.ctx
        with ctx.db() as session:
            job_id = session.scalar(
                select(Job.id).where(Job.container_name == name, held_by(ctx.node.node))
            )
        if job_id is None or job_id in ctx.launching:
            return
        state = ctx.runtime.inspect(name)
        if state is not None and state.ended:
            observe_end(ctx, job_id, state)

    @staticmethod
    def _guard(step):  # type: ignore[no-untyped-def]
        """One failing step (database restart, Docker hiccup) must not end the supervisor."""
        try:
            return step()
        except Exception:
            log.exception("supervisor step failed; continuing")
            return None
