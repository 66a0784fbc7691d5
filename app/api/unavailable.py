"""Which dependency an exception says is down: the database, the broker, or neither (a bug).

A request that fails because PostgreSQL or Redis cannot be reached answers 503 with
`Retry-After` (app/api/envelope.py), not 500: the client did nothing wrong and the same
request will work once the dependency is back.
"""

from __future__ import annotations

from typing import Literal

import psycopg
from sqlalchemy import exc as sa_exc

from app.services.publisher import BROKER_ERRORS, BrokerUnavailable

# Seconds a client is told to wait before trying again (`Retry-After`): about how long a
# restarted PostgreSQL or Redis takes to accept connections again.
RETRY_AFTER_S = 5

Dependency = Literal["database", "broker"]

# SQLSTATEs of a server that is going away, starting, or full: 08xxx connection exceptions,
# admin/crash shutdown, "cannot connect now", too many connections.
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}


def unavailable_dependency(exc: BaseException) -> Dependency | None:
    """The dependency `exc` (or an exception it was raised from) says is unreachable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _database_unreachable(current):
            return "database"
        if isinstance(current, (BrokerUnavailable, *BROKER_ERRORS)):
            return "broker"
        current = current.__cause__ or current.__context__
    return None


def _database_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True  # the connection broke under the statement
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if not isinstance(cause, psycopg.OperationalError):
        return False
    # No SQLSTATE: the client itself failed (refused, reset, timed out), not a statement.
    sqlstate = cause.sqlstate
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
