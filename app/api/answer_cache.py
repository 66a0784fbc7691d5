"""The list's answers, kept per API process until a model or a job changes.

A dashboard asks for the same pages again and again, and until a model or a job changes every
one of those answers is the same: reading and formatting them again was most of a list page's
time (bench/README.md). Migration 0016 makes every commit that changes a model or a job take
the next value of the sequence `tb_change_seq` (a deferred trigger, as it commits; no lock, so
writers never wait on it), and heartbeats and other tables leave it alone. So an answer read
while the counter said N is what any later read answers while it still says N, and a kept
answer costs one round trip (`last_value`) instead of the page's queries and formatting.

The one moment to cover: a transaction that took its number but has not finished committing.
An answer read then would miss its rows and be kept under its number, so an answer is kept only
when, after the counter was read, no other transaction of this database holds a transaction id
(`pg_stat_activity.backend_xid`): any that took its number before the counter was read is still
in flight then, or committed and is in the answer. Nothing is shown stale, and a client reads
its own writes.

What an answer depends on besides the two tables is part of its version: the live nodes'
images (`allowedCommands`, reused for LIVE_IMAGES_CACHE_S). Pages that show metrics
(`withSummary`, `metric=`, `sort=best:…`) read other tables and are not kept. SQLite (the
embedded `make run`) keeps nothing. ANSWER_CACHE_ENTRIES bounds how many answers a process
keeps (0: none).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import psycopg
from flask import Response
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db.driver_rows import pooled_driver_connection
from app.services.images import LiveImages, LiveImagesCache, live_images

#: Response header saying whether the answer was kept (`hit`) or read (`miss`).
HEADER = "X-Answer-Cache"

_COUNTER = "SELECT last_value FROM tb_change_seq"
_OTHERS_WRITING = text(
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
    "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid())"
)


@dataclass(frozen=True)
class Version:
    """What an answer was read at: the change counter and the live nodes' images."""

    changes: int
    images: LiveImages


class AnswerCache:
    """Up to `entries` JSON answers by key (least recently used dropped first), each valid for
    one `Version`. Thread-safe: a gthread worker serves requests side by side."""

    def __init__(self, entries: int, engine: Engine, images: LiveImagesCache) -> None:
        self.entries = entries if engine.dialect.name == "postgresql" else 0
        self._engine = engine
        self._images = images
        self._kept: OrderedDict[object, tuple[Version, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def changes(self) -> int | None:
        """The change counter now; None where nothing is kept (or it could not be read)."""
        if self.entries <= 0:
            return None
        try:
            # A pooled driver connection, not a Session and the ORM's execute path: this
            # round trip is all a kept answer costs, and those doubled it.
            with pooled_driver_connection(self._engine) as driver:
                row = driver.execute(_COUNTER).fetchone()
        except DBAPIError:
            return None  # no connection: the read itself meets the outage, and answers 503
        except (psycopg.OperationalError, psycopg.InterfaceError):
            # A pooled connection the server closed (a restart), now out of the pool: the read
            # itself meets the outage or goes on with a new connection. Any other error (a
            # database not migrated to 0016) is the request's error.
            return None
        return int(row[0]) if row else None

    def get(self, key: object, changes: int | None) -> Response | None:
        """The answer kept for `key` at `changes` and the live images now, as a response;
        None when there is none."""
        if changes is None:
            return None
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or kept[0].changes != changes or kept[0].images != self._live_images():
            return None
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
        response = Response(kept[1], mimetype="application/json")
        response.headers[HEADER] = "hit"
        return response

    def keepable(self, session: Session, changes: int | None) -> int | None:
        """`changes` if an answer read from now on in `session` may be kept under it (see
        the module's docstring), else None."""
        if changes is None:
            return None
        others_writing = session.connection().execute(_OTHERS_WRITING).scalar()
        return None if others_writing else changes

    def put(
        self, key: object, changes: int | None, session: Session, response: Response
    ) -> Response:
        """Keep the body of `response`, a 200 read in `session` (`changes`: `keepable`'s
        answer, None: not to be kept), for `key`; returns it, marked."""
        response.headers[HEADER] = "miss"
        if changes is None or self.entries <= 0 or response.status_code != 200:
            return response
        version = Version(changes, live_images(session))  # the images the answer used
        body = response.get_data()
        with self._lock:
            self._kept[key] = (version, body)
            self._kept.move_to_end(key)
            while len(self._kept) > self.entries:
                self._kept.popitem(last=False)
        return response

    def _live_images(self) -> LiveImages:
        images = self._images.peek()
        if images is None:  # read at most once per LIVE_IMAGES_CACHE_S
            with Session(self._engine) as session:
                images = self._images.get(session)
        return images
