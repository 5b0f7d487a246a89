"""The platform's retry policy: exponential backoff with jitter, within its bounds."""

from __future__ import annotations

import logging

import pytest
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from loadbay_platform.retries import backoff, delay_after, log_retry


def test_waits_double_from_the_initial_one_with_jitter_and_stop_at_the_cap() -> None:
    wait = backoff(0.5, 4.0)
    for attempt, low in ((1, 0.5), (2, 1.0), (3, 2.0)):
        delays = {delay_after(wait, attempt) for _ in range(50)}
        assert all(low <= d <= low + 0.5 for d in delays), (attempt, delays)
        assert len(delays) > 1  # jitter: replicas do not retry in step
    assert {delay_after(wait, n) for n in (4, 10, 5000)} == {4.0}


async def test_a_retry_loop_logs_each_wait_and_gives_up_within_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    log = logging.getLogger("tests.retries")

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"down ({calls})")

    with caplog.at_level(logging.WARNING, logger="tests.retries"), pytest.raises(ConnectionError):
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(ConnectionError),
            stop=stop_after_attempt(3),
            wait=backoff(0.001, 0.01),
            before_sleep=log_retry(log, lambda state: f"try {state.attempt_number}"),
            reraise=True,
        ):
            with attempt:
                await flaky()
    assert calls == 3
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "try 1: ConnectionError('down (1)')",
        "try 2: ConnectionError('down (2)')",
    ]
