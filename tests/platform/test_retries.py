"""The platform's retry policy (stamina): exponential backoff with jitter, within its bounds."""

from __future__ import annotations

import logging

import pytest

from loadbay_platform.retries import logged, retrying, scheduled_delay


def test_scheduled_waits_double_with_jitter_and_stop_at_the_cap() -> None:
    for attempt, low in ((1, 0.5), (2, 1.0), (3, 2.0)):
        delays = {scheduled_delay(0.5, 4.0, attempt) for _ in range(50)}
        assert all(low <= d <= low + 0.5 for d in delays), (attempt, delays)
        assert len(delays) > 1  # jitter: replicas do not retry in step
    assert {scheduled_delay(0.5, 4.0, n) for n in (4, 10, 5000)} == {4.0}


async def test_a_retry_loop_logs_each_failure_and_gives_up_within_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0
    log = logging.getLogger("tests.retries")

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"down ({calls})")

    def transient(exc: Exception) -> bool:
        return isinstance(exc, ConnectionError)

    with caplog.at_level(logging.WARNING, logger="tests.retries"), pytest.raises(ConnectionError):
        async for attempt in retrying(
            logged(transient, log, lambda _: "flaky"), initial_s=0.001, max_s=0.01, attempts=3
        ):
            with attempt:
                await flaky()
    assert calls == 3
    assert [r.getMessage() for r in caplog.records if r.name == "tests.retries"][:2] == [
        "flaky: ConnectionError('down (1)'); retrying with backoff",
        "flaky: ConnectionError('down (2)'); retrying with backoff",
    ]


async def test_what_the_predicate_refuses_propagates_at_once() -> None:
    calls = 0
    with pytest.raises(ValueError):
        async for attempt in retrying(
            lambda exc: isinstance(exc, ConnectionError), initial_s=0.001, max_s=0.01
        ):
            with attempt:
                calls += 1
                raise ValueError("not transient")
    assert calls == 1
