"""How long to wait before the next connection attempt: exponential backoff with full jitter
for transient failures, a wait between half the maximum and the maximum after a permanent
refusal, and a reset once a connection stayed up. Deciding *whether* a failure is permanent is
``register.py``'s job; this module only computes delays. The random source is seedable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffConfig:
    """Reconnection timing in seconds. Defaults: 1 s initial, 30 s maximum, reset after 30 s."""

    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 30.0
    seed: int | None = None


class Backoff:
    """The backoff state of one connection slot."""

    def __init__(self, config: BackoffConfig) -> None:
        self.config = config
        self.failures = 0
        self._random = random.Random(config.seed)

    def ceiling(self) -> float:
        """``min(maximum, initial * 2**failures)``: the bound of the next transient delay."""
        return min(self.config.maximum, self.config.initial * 2 ** min(self.failures, 62))

    def next_delay(self) -> float:
        """Uniform in ``[0, ceiling)`` ("full jitter"); then the ceiling doubles."""
        delay = self.ceiling() * self._random.random()
        self.failures += 1
        return delay

    def permanent_delay(self) -> float:
        """Uniform in ``[maximum/2, maximum]``: rare retries, never a hot loop."""
        self.failures += 1
        half = self.config.maximum / 2
        return half + half * self._random.random()

    def connection_ended(self, uptime: float) -> None:
        """A connection that stayed up ``reset_after`` seconds forgets past failures."""
        if uptime >= self.config.reset_after:
            self.failures = 0
