"""When a failed delivery is tried again, and when it is given up as a dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from infrastructure.backoff import equal_jitter


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int | None = 8  # None: never a dead letter
    base_delay: float = 1.0
    max_delay: float = 300.0

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failures; None once they are used up.

        The delay doubles per failure up to ``max_delay`` and is drawn from its upper half
        ("equal jitter"), so retries of a burst of failures spread out instead of colliding.
        """
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=equal_jitter(attempts, self.base_delay, self.max_delay))
