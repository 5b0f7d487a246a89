"""Liveness: the loops a service cannot do without (the event consumer's poll loop, the outbox
relay) report each turn; `/healthz` fails once one has not turned for a while, so an
orchestrator restarts a process that is alive but stuck rather than leave its work waiting."""

from __future__ import annotations

import time


class Liveness:
    def __init__(self, stall_after_s: float = 120.0) -> None:
        self.stall_after_s = stall_after_s
        self._turns: dict[str, float] = {}

    def turn(self, loop: str) -> None:
        """`loop` is making progress (called at least every few seconds while it runs)."""
        self._turns[loop] = time.monotonic()

    def stalled(self) -> list[str]:
        """The loops that have not turned for `stall_after_s`, each with how long."""
        now = time.monotonic()
        return [
            f"{loop} has not turned for {now - last:.0f}s"
            for loop, last in sorted(self._turns.items())
            if now - last > self.stall_after_s
        ]
