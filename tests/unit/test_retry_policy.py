"""The dispatcher's retry schedule: exponential, capped, with "equal jitter" (a delay drawn
from the upper half of the ceiling), and none once the attempts are used up."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from infrastructure.events.retry_policy import RetryPolicy

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def delay(policy: RetryPolicy, attempts: int) -> float:
    retry_at = policy.next_attempt(attempts, NOW)
    assert retry_at is not None
    return (retry_at - NOW).total_seconds()


def test_each_delay_is_within_the_upper_half_of_a_doubling_ceiling_capped_at_max_delay() -> None:
    policy = RetryPolicy(max_attempts=12, base_delay=2.0, max_delay=60.0)
    ceilings = {1: 2.0, 2: 4.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 60.0, 7: 60.0, 11: 60.0}

    for attempts, ceiling in ceilings.items():
        delays = [delay(policy, attempts) for _ in range(200)]
        assert all(ceiling / 2 <= value <= ceiling for value in delays), (attempts, min(delays), max(delays))


@pytest.mark.parametrize("bound", ["low", "high"])
def test_the_ceiling_doubles_per_failure_up_to_max_delay(monkeypatch: pytest.MonkeyPatch, bound: str) -> None:
    """With the random draw pinned to an end of its range, the schedule is exact."""
    monkeypatch.setattr(random, "uniform", lambda low, high: low if bound == "low" else high)
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=30.0)

    ceilings = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    expected = ceilings if bound == "high" else [ceiling / 2 for ceiling in ceilings]
    assert [delay(policy, attempts) for attempts in range(1, 10)] == expected


def test_no_retry_once_the_attempts_reach_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=10.0)

    assert policy.next_attempt(1, NOW) is not None
    assert policy.next_attempt(2, NOW) is not None
    assert policy.next_attempt(3, NOW) is None
    assert policy.next_attempt(4, NOW) is None
    assert RetryPolicy(max_attempts=1).next_attempt(1, NOW) is None


def test_jitter_spreads_the_retries_of_a_burst() -> None:
    policy = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=300.0)

    delays = [delay(policy, 4) for _ in range(50)]

    assert len(set(delays)) > 40
    assert max(delays) - min(delays) > 1.0, "spread over the upper half of the 8 s ceiling"


def test_the_retry_time_is_after_now() -> None:
    policy = RetryPolicy()

    assert all(delay(policy, attempts) > 0 for attempts in range(1, policy.max_attempts))


def test_without_a_limit_there_is_always_a_next_attempt_at_the_longest_delay() -> None:
    policy = RetryPolicy(max_attempts=None, base_delay=1.0, max_delay=300.0)

    assert all(150.0 <= delay(policy, attempts) <= 300.0 for attempts in (10, 100, 10_000) for _ in range(50))
