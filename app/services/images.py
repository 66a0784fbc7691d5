"""Which images the live nodes can run: each node lists its images with its heartbeat
(workers/heartbeat.py, `tb_node.images`), and the API refuses a model whose image no live node
has, at create and at every command that starts a container, instead of a launch that fails
with IMAGE_NOT_FOUND.

When the API cannot know, it does not refuse: no node is alive (the job waits in the queue for
one), a live node runs any image (the process runtime, `images` NULL), or the reference is a
digest (`repo@sha256:…`), which a node's tag list does not show. The launch still names a
missing image IMAGE_NOT_FOUND then.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.config import node_lost_after_s
from app.db.models import Node
from app.domain.timefmt import utcnow

_CACHE_KEY = "trainyard.live_images"
_SHARED_KEY = "trainyard.live_images_shared"  # a LiveImagesCache the session's factory shares
_DOCKER_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/")


def normalize_image(reference: str) -> str:
    """The name `docker images` shows: Docker Hub's prefixes dropped, `:latest` added to a
    reference without a tag (`python` → `python:latest`, `docker.io/library/python:3.12` →
    `python:3.12`). A digest reference is returned as it is."""
    ref = reference.strip()
    if "@" in ref:
        return ref
    for prefix in _DOCKER_HUB_PREFIXES:
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    if ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


@dataclass(frozen=True)
class LiveImages:
    nodes: tuple[str, ...]  # the live nodes that listed their images
    images: frozenset[str]  # every image any of them has
    any_image: bool  # no live node, or one that runs any image: nothing can be refused


# Built once, the cutoff bound at execution: every list page and detail reads it, and through
# the ORM's execute path (building the statement, then an ORM result) it cost more than the page.
_LIVE_NODES = (
    select(Node.name, Node.images)
    .where(Node.last_seen_dttm >= bindparam("cutoff"))
    .order_by(Node.name)
)


def live_images(session: Session) -> LiveImages:
    """The live nodes' images, read once per session (a list page asks for each model), or
    taken from the `LiveImagesCache` the session's factory shares (`shared_by`)."""
    cached = session.info.get(_CACHE_KEY)
    if isinstance(cached, LiveImages):
        return cached
    shared = session.info.get(_SHARED_KEY)
    answer = shared.get(session) if isinstance(shared, LiveImagesCache) else _read(session)
    session.info[_CACHE_KEY] = answer
    return answer


class LiveImagesCache:
    """The live nodes' images, kept `ttl_s` seconds per API process for the read endpoints.

    The list and the detail show `allowedCommands` (a model whose image no live node has
    cannot be run); reading tb_node for each was a round trip of every request, and the
    answer moves only with a node's heartbeat (every few seconds). A command that starts a
    container still reads them afresh in its own transaction (status_writes). 0: no cache.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._kept: tuple[float, LiveImages] | None = None
        self._lock = threading.Lock()

    def get(self, session: Session) -> LiveImages:
        kept = self.peek()
        if kept is not None:
            return kept
        now = time.monotonic()
        answer = _read(session)
        if self.ttl_s > 0:
            with self._lock:
                self._kept = (now, answer)
        return answer

    def peek(self) -> LiveImages | None:
        """What `get` would answer without reading, None once it would read (or never keeps)."""
        with self._lock:
            kept = self._kept
        if kept is None or time.monotonic() - kept[0] >= self.ttl_s:
            return None
        return kept[1]

    def shared_by(self) -> dict[str, object]:
        """The `info` of a session factory whose sessions share this cache."""
        return {_SHARED_KEY: self}


def _read(session: Session) -> LiveImages:
    # A node silent for NODE_LOST_AFTER_S (presumed lost) does not count as having any image.
    cutoff = utcnow() - timedelta(seconds=node_lost_after_s())
    rows = session.connection().execute(_LIVE_NODES, {"cutoff": cutoff}).all()
    listed = [(name, images) for name, images in rows if images is not None]
    return LiveImages(
        nodes=tuple(name for name, _ in listed),
        images=frozenset(normalize_image(i) for _, images in listed for i in images),
        any_image=not rows or len(listed) < len(rows),
    )


def missing_image(session: Session, image: str) -> str | None:
    """None when a live node has `image` (or nobody can tell, see the module's docstring);
    else why not, naming the image and the live nodes."""
    live = live_images(session)
    if live.any_image or "@" in image:
        return None
    if normalize_image(image) in live.images:
        return None
    nodes = ", ".join(live.nodes)
    return (
        f"image '{image}' is on no live node (nodes: {nodes}). Build or load it on a node "
        "(docker build / docker load; `make images` builds the project's own), then try again."
    )
