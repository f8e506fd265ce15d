"""The one retry schedule of the shop: event deliveries, calls to other services, reconnects."""

from __future__ import annotations

import random


def equal_jitter(attempt: int, base: float, maximum: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1: the first). The ceiling doubles per
    attempt from ``base`` up to ``maximum``; the delay is drawn from its upper half ("equal
    jitter"), so retries of a burst of failures spread out instead of colliding, yet none comes
    sooner than half the ceiling."""
    ceiling = min(maximum, base * 2 ** min(attempt - 1, 62))  # the exponent capped: a float stays finite
    return random.uniform(ceiling / 2, ceiling)
