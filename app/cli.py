"""`trainyard` command line: operator tasks that are not HTTP requests."""

from __future__ import annotations

import argparse
import sys

from app.config import load_settings


def _migrate(_: argparse.Namespace) -> int:
    from app.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    print(f"database at head: {settings.database_url.split('@')[-1]}")
    return 0


def _relay(_: argparse.Namespace) -> int:
    from app.db.session import make_engine, make_session_factory
    from app.services.outbox import publish_pending
    from app.services.publisher import CeleryPublisher

    settings = load_settings()
    factory = make_session_factory(make_engine(settings.database_url))
    sent = publish_pending(
        factory, CeleryPublisher(settings.broker_url, settings.publish_timeout_s)
    )
    print(f"published {sent} outbox message(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainyard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database to the newest schema").set_defaults(
        run=_migrate
    )
    commands.add_parser(
        "relay-outbox", help="publish tasks a crash or broker outage left unsent"
    ).set_defaults(run=_relay)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
