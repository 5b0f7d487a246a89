"""What counts as an outage of a dependency (database, broker, object store), not a fault of the
work at hand: such failures are waited out without limit, never dead-lettered or failed."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaConnectionError
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # "cannot switch to state N; another operation is in progress": a connection that broke
    # mid-operation when the server went away.
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    KafkaConnectionError,
    BotoConnectionError,
    HTTPClientError,
)

# What a loop that only talks to PostgreSQL waits out: the server gone, restarting, or a
# connection broken mid-operation ("cannot switch to state N; another operation is in progress").
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

# S3 answers that mean "the service is struggling", not "your request is wrong".
_TRANSIENT_S3_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says a dependency is unavailable, so the same work may succeed later."""
    if isinstance(exc, INFRASTRUCTURE_ERRORS):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _TRANSIENT_S3_CODES or int(status or 0) >= 500
    return False


def stop_if_cancelled(exc: Exception) -> None:
    """Call first in a retry loop's `except Exception`: a task cancelled mid-transaction can
    see the rollback fail (InterfaceError, an outage) instead of CancelledError, and must then
    stop rather than retry."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc
