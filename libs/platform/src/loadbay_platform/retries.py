"""Retry policies, from tenacity: exponential backoff with jitter, so that replicas waiting out
the same outage do not all come back at the same instant.

Each loop keeps its own bounds (attempts, a deadline, or none while an outage lasts); this
module only says how long to wait and logs each wait the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tenacity import RetryCallState, Retrying, wait_exponential_jitter
from tenacity.wait import wait_base


def backoff(initial_s: float, max_s: float) -> wait_base:
    """Waits of `initial_s`, then doubling up to `max_s`, each plus up to `initial_s` at
    random."""
    return wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s)


def delay_after(wait: wait_base, attempts: int) -> float:
    """The wait `wait` gives after the `attempts`-th failure, for a retry that is scheduled
    (a row's next attempt time) rather than slept."""
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempts
    return float(wait(state))


def log_retry(
    log: logging.Logger, what: Callable[[RetryCallState], str]
) -> Callable[[RetryCallState], None]:
    """A `before_sleep` hook: a warning naming the error and the coming wait."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("%s: %r; retrying in %.1fs", what(state), error, state.upcoming_sleep)

    return before_sleep
