"""What a running API process holds: settings, the database engines, the broker publisher.

(Not to be confused with workers/runtime/, the container runtimes.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api.answer_cache import AnswerCache
from app.config import Settings
from app.db.session import (
    API_CONNECT_TIMEOUT_S,
    AUTOCOMMIT_READS,
    make_engine,
    make_read_engine,
    make_session_factory,
)
from app.services.images import LiveImagesCache
from app.services.publisher import CeleryPublisher, Publisher
from app.services.queries import CountCache


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # writes (and reads inside a write)
    reads: sessionmaker[Session]  # plain reads: autocommit, no ping, live images shared
    publisher: Publisher
    answers: AnswerCache  # list pages, kept until a model or a job changes
    read_engine: Engine | None = None
    list_counts: CountCache = field(default_factory=lambda: CountCache(0))

    def dispose(self) -> None:
        """Close every pooled connection (tests build many apps)."""
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()

    @classmethod
    def from_settings(cls, settings: Settings) -> AppState:
        engine = make_engine(settings.database_url, API_CONNECT_TIMEOUT_S)
        read_engine = make_read_engine(settings.database_url, API_CONNECT_TIMEOUT_S)
        live_images = LiveImagesCache(settings.live_images_cache_s)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_session_factory(engine),
            reads=make_session_factory(
                read_engine, {**live_images.shared_by(), AUTOCOMMIT_READS: True}
            ),
            read_engine=read_engine,
            list_counts=CountCache(settings.list_count_cache_s),
            answers=AnswerCache(settings.answer_cache_entries, read_engine, live_images),
            publisher=CeleryPublisher(settings.broker_url, settings.publish_timeout_s),
        )


def state() -> AppState:
    return current_app.extensions["trainyard"]
