"""`trainyard` command line: operator tasks that are not HTTP requests."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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


def _node_jobs(node: str) -> list[tuple[int, str]]:
    """Jobs a node still holds: claimed by it, container not yet confirmed gone."""
    from sqlalchemy import select

    from app.db.models import Job
    from app.db.session import make_engine, make_session_factory
    from app.services.queries import held_by

    engine = make_engine(load_settings().database_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(
                select(Job.id, Job.status_cd)
                .where(held_by(node))
                .order_by(Job.id)
            )
            return [(job_id, status) for job_id, status in rows]
    finally:
        engine.dispose()


def _drain_flag(node: str) -> Path:
    from workers.settings import drain_file

    if not node or "/" in node or node.startswith("."):
        raise SystemExit(f"not a node name: {node!r}")
    return drain_file(Path(os.environ.get("TRAINYARD_HOME") or Path.cwd() / "var"), node)


def _drain(args: argparse.Namespace) -> int:
    flag = _drain_flag(args.node)
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.write_text(f"drained by {os.environ.get('USER', '?')} at {time.ctime()}\n")
    print(f"node {args.node} is draining: it takes no new job ({flag})")
    deadline = time.monotonic() + args.timeout
    while True:
        jobs = _node_jobs(args.node)
        if not jobs:
            print(f"node {args.node} holds no job: it can be stopped")
            return 0
        held = ", ".join(f"{job_id} ({status})" for job_id, status in jobs)
        print(f"node {args.node} still holds {len(jobs)} job(s): {held}")
        if not args.wait:
            return 0
        if time.monotonic() > deadline:
            print(f"gave up waiting after {args.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(args.interval)


def _undrain(args: argparse.Namespace) -> int:
    flag = _drain_flag(args.node)
    flag.unlink(missing_ok=True)
    print(f"node {args.node} takes new jobs again")
    return 0


def _devstack(args: argparse.Namespace) -> int:
    from app.devstack import run

    return run(args)


def _worker(args: argparse.Namespace) -> int:
    if args.check:
        from workers.check import run_checks

        return run_checks()
    from workers.main import main as worker_main

    return worker_main([])


def _api(args: argparse.Namespace) -> int:
    from app.serve import serve

    serve(args.gunicorn_options)


def _reingest(args: argparse.Namespace) -> int:
    from app.metrics.reingest import reingest

    return reingest(load_settings(), args.job_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainyard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database to the newest schema").set_defaults(
        run=_migrate
    )
    commands.add_parser(
        "relay-outbox", help="publish tasks a crash or broker outage left unsent"
    ).set_defaults(run=_relay)
    drain = commands.add_parser(
        "drain",
        help="a node takes no new job and finishes the ones it runs (flag file "
        "$TRAINYARD_HOME/drain-NODE; run it where that node's TRAINYARD_HOME is)",
    )
    drain.add_argument("node", help="the node's NODE_NAME")
    drain.add_argument("--wait", action="store_true", help="until the node holds no job")
    drain.add_argument("--timeout", type=float, default=24 * 3600, help="seconds (--wait)")
    drain.add_argument("--interval", type=float, default=10, help="seconds between checks")
    drain.set_defaults(run=_drain)
    undrain = commands.add_parser("undrain", help="a drained node takes new jobs again")
    undrain.add_argument("node", help="the node's NODE_NAME")
    undrain.set_defaults(run=_undrain)
    worker = commands.add_parser(
        "worker",
        help="start this node: the Celery worker and its supervisor (settings: README.md)",
    )
    worker.add_argument(
        "--check",
        action="store_true",
        help="only check that it could start (settings, database schema, broker, container "
        "runtime), print what was found; exit status 0 when all is well",
    )
    worker.set_defaults(run=_worker)
    reingest = commands.add_parser(
        "reingest", help="load a finished job's metric CSVs again (replaces its rows)"
    )
    reingest.add_argument("job_id", type=int, help="the job's id")
    reingest.set_defaults(run=_reingest)
    commands.add_parser(
        "api",
        help="serve the API and dashboard with gunicorn; every other option goes to gunicorn "
        "(e.g. --bind 0.0.0.0:8000 --workers 4). A non-loopback bind needs API_TOKEN, or "
        "ALLOW_INSECURE_NO_TOKEN=1 (docs/security.md)",
    ).set_defaults(run=_api)
    from app.devstack import add_arguments

    devstack = commands.add_parser(
        "devstack",
        help="run everything on this machine (what `make run` runs): API, worker, Flower, "
        "an embedded Redis unless BROKER_URL is set; Ctrl-C stops it all",
    )
    add_arguments(devstack)
    devstack.set_defaults(run=_devstack)
    # gunicorn's own options follow `api`; every other command takes only its own.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "api":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.gunicorn_options = extra
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
