"""Retries with exponential backoff and jitter, from stamina (as in the consumer, the
dead-letter path and the outbox relay), so that replicas waiting out the same outage do not
all come back at the same instant.

Each loop keeps its own bounds (attempts, a deadline, or none while an outage lasts); this
module says how long to wait (`initial_s`, doubling up to `max_s`, plus up to `initial_s` at
random) and logs each failure that is retried.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable

import stamina

RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]


def retrying(
    on: RetryOn,
    *,
    initial_s: float,
    max_s: float,
    attempts: int | None = None,
    timeout_s: float | None = None,
) -> AsyncIterator[stamina.Attempt]:
    """Attempts of a block (`async for attempt in ...: with attempt: ...`): an exception
    `on` accepts (one of its types, or one it returns True for) is retried, within `attempts`
    and `timeout_s` (None: no limit); the last one, or any other, propagates."""
    return aiter(
        stamina.retry_context(
            on=on,
            attempts=attempts,
            timeout=timeout_s,
            wait_initial=initial_s,
            wait_jitter=initial_s,
            wait_max=max_s,
        )
    )


def logged(
    on: Callable[[Exception], bool], log: logging.Logger, what: Callable[[Exception], str]
) -> Callable[[Exception], bool]:
    """`on`, logging a warning for each failure it accepts (the retry follows)."""

    def accept(exc: Exception) -> bool:
        if on(exc):
            log.warning("%s: %r; retrying with backoff", what(exc), exc)
            return True
        return False

    return accept


def scheduled_delay(initial_s: float, max_s: float, attempts: int) -> float:
    """The same wait, after the `attempts`-th failure, for a retry that is scheduled (a row's
    next attempt time) rather than slept."""
    try:
        wait = initial_s * 2.0 ** (attempts - 1)
    except OverflowError:
        wait = max_s
    return min(wait + random.uniform(0, initial_s), max_s)
