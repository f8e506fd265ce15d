"""One circuit breaker per target URL (pybreaker), for :class:`~.service.RemoteService`.

A breaker counts transport failures and 5xx answers; while it is open calls fail at once,
without touching the network. A timeout that only fired because the caller's deadline cut the
attempt short says nothing about the target, and is not counted. While it is open, a call at
most every ``probe_seconds`` asks the target's readiness endpoint first (no token, the connect
timeout): a target that is ready again half-opens the breaker at once, so callers are back
within about half a second of a restarted service answering, not after the rest of
``breaker_reset_seconds``. A target that says it is ready but then fails the trial call is not
asked again until the breaker has closed: only the reset timeout lets its trials through, as if
it had no probe. The outcome of a call admitted before the breaker last opened or half-opened
(one that started while the target was still down, and fails or answers only now) is the
caller's alone: it says nothing about the target as it is now, and the breaker ignores it.

The application container holds the process's :class:`BreakerRegistry` (ARCHITECTURE.md, rule 7).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pybreaker
import structlog
from prometheus_client import Gauge

from infrastructure.observability.metrics import BREAKER_STATES, Metrics

logger = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


class CircuitOpen(Exception):
    """The breaker refused a call: the target failed too often lately; ``seconds_left`` until a trial."""

    def __init__(self, seconds_left: float) -> None:
        super().__init__("circuit open")
        self.seconds_left = seconds_left


class _Failure(Exception):
    """Stands for a failed call when its outcome is recorded with the breaker."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _succeed() -> None:
    return None


def _fail() -> NoReturn:
    raise _Failure()


class TargetBreaker:
    """pybreaker's state machine, consulted around a call instead of wrapping it.

    ``CircuitBreaker.call`` holds the breaker's lock while the wrapped function runs
    (danielfm/pybreaker#3), so one slow call would hold up every other call to the target.
    Here the call runs outside: :meth:`admit` fails fast while the breaker is open and, once
    ``reset_seconds`` have passed on ``clock``, half-opens it so that calls go through until
    one outcome decides; the outcome is then fed to pybreaker as a call of a function that
    only returns or raises, which updates its counts and state under its lock.

    ``probe`` (whether the target says it is ready) lets a restarted target end the wait
    early: while open, once ``probe_seconds`` have passed since the opening or the last probe,
    the next call admitted runs it (one call at a time; the others fail fast meanwhile) and,
    when the target is ready, half-opens the breaker and goes through as its trial call. The
    probe runs in the caller's thread rather than in a thread of the breaker's own, so an idle
    process asks nothing, and a probe happens only when someone is waiting for the target.
    ``probe`` is given the seconds the caller has left, which it must not exceed.

    A probe that said "ready" before a trial call that failed is not believed again until the
    breaker closes: a target that answers its readiness endpoint but fails (or hangs on) real
    calls would otherwise get a trial call every ``probe_seconds``, and ``reset_seconds`` would
    mean nothing.

    Admission generations: :meth:`admit` returns the breaker's generation, which the caller
    gives back with the call's outcome; each opening and half-opening starts a new one. An
    outcome from an earlier generation is not recorded. Otherwise a slow call that started
    while the target was down, and failed after it came back, would re-open a half-open breaker
    (and make its probe disbelieved, so recovery waited for ``reset_seconds``) or count against
    the closed state that followed. Closing starts none: calls let through while half-open
    were made to the target as it is now, and their failures count.
    """

    def __init__(
        self,
        target: str,
        *,
        failures: int,
        reset_seconds: float,
        clock: Clock = _utc_now,
        probe: Callable[[float], bool] | None = None,
        probe_seconds: float = 0.5,
        gauge: Gauge | None = None,
    ) -> None:
        """``gauge``: where the breaker's state is shown (``shop_remote_breaker_state``)."""
        if gauge is not None:
            gauge.set(BREAKER_STATES[pybreaker.STATE_CLOSED])
        self._clock = clock
        self._opened_at: datetime | None = None
        self._probe = probe
        self._probe_every = timedelta(seconds=probe_seconds)
        self._next_probe_at: datetime | None = None
        self._probing = False
        # The current half-open state began with a probe's "ready"; and whether probes are
        # believed (not since such a trial failed, until the breaker closes).
        self._probed_trial = False
        self._probe_believed = True
        # Bumped (under pybreaker's lock, within the admission lock) when the breaker opens or
        # half-opens; the outcomes of calls admitted in an earlier one are ignored.
        self._generation = 0
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=failures,
            reset_timeout=reset_seconds,
            listeners=[
                _Watch(
                    on_open=self._note_opening,
                    on_half_open=self._note_half_opening,
                    on_close=self._note_closing,
                    gauge=gauge,
                )
            ],
            name=target,
        )
        self._admission = threading.Lock()

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        return self._breaker.current_state

    def seconds_until_trial(self) -> float:
        """While open, how long until a trial call may be let through (the reset timeout's end,
        or the next probe's turn if sooner); 0 otherwise."""
        reset_left = self._seconds_until_reset()
        next_probe_at = self._next_probe_at
        if reset_left <= 0 or self._probe is None or next_probe_at is None:
            return reset_left
        return max(0.0, min(reset_left, (next_probe_at - self._clock()).total_seconds()))

    def _seconds_until_reset(self) -> float:
        opened_at = self._opened_at
        if self.state != pybreaker.STATE_OPEN or opened_at is None:
            return 0.0
        reopens = opened_at + timedelta(seconds=self._breaker.reset_timeout)
        return max(0.0, (reopens - self._clock()).total_seconds())

    def admit(self, seconds_left: float) -> int:
        """The generation the call is admitted in, to be given back with its outcome. Raise
        :class:`CircuitOpen` while calls must not be made; while open, probe the target first,
        within ``seconds_left``, when a probe is due (see the class's docstring)."""
        with self._admission:
            if self.state != pybreaker.STATE_OPEN:
                return self._generation
            if self._seconds_until_reset() <= 0:
                self._probed_trial = False
                self._breaker.half_open()
                return self._generation
            if not self._probe_due():
                raise CircuitOpen(self.seconds_until_trial())
            self._probing = True
        ready = False
        try:
            ready = self._probe is not None and self._probe(seconds_left)
        finally:
            with self._admission:
                self._probing = False
                self._next_probe_at = self._clock() + self._probe_every
                reopened = ready and self.state == pybreaker.STATE_OPEN
                if reopened:
                    self._probed_trial = True
                    self._breaker.half_open()
                admitted_in = self._generation
        if not ready:
            raise CircuitOpen(self.seconds_until_trial())
        if reopened:
            logger.info("remote.breaker_probe_answered", target=self._breaker.name)
        return admitted_in

    def _probe_due(self) -> bool:
        """With the admission lock held: whether this call is to probe the target."""
        next_probe_at = self._next_probe_at
        return (
            self._probe is not None
            and not self._probing
            and next_probe_at is not None
            and self._clock() >= next_probe_at
        )

    def record_success(self, admitted_in: int) -> None:
        """A call admitted in generation ``admitted_in`` (see :meth:`admit`) was answered."""
        with self._admission:
            if admitted_in != self._generation:
                return
            with contextlib.suppress(pybreaker.CircuitBreakerError):
                self._breaker.call(_succeed)

    def record_failure(self, admitted_in: int) -> None:
        """A call admitted in generation ``admitted_in`` (see :meth:`admit`) failed."""
        with self._admission:
            if admitted_in != self._generation:
                logger.info("remote.breaker_stale_failure_ignored", target=self._breaker.name, state=self.state)
                return
            with contextlib.suppress(pybreaker.CircuitBreakerError, _Failure):
                self._breaker.call(_fail)

    def _note_opening(self) -> None:
        """The breaker opened (again, when a trial call failed): the reset timeout and the
        probes count from now; none while a trial a probe let through failed last."""
        self._generation += 1
        if self._probed_trial:
            self._probed_trial = False
            self._probe_believed = False
            logger.warning("remote.breaker_probe_disbelieved", target=self._breaker.name)
        self._opened_at = self._clock()
        self._next_probe_at = self._opened_at + self._probe_every if self._probe_believed else None

    def _note_half_opening(self) -> None:
        """The breaker half-opened: calls admitted from now on are its trials."""
        self._generation += 1

    def _note_closing(self) -> None:
        """The target answered a trial call: its readiness is believed again."""
        self._probed_trial = False
        self._probe_believed = True


class _Watch(pybreaker.CircuitBreakerListener):
    """Tells when the breaker opens (so its owner can note the time on its own clock),
    half-opens or closes, and logs every change of state."""

    def __init__(
        self,
        *,
        on_open: Callable[[], None],
        on_half_open: Callable[[], None],
        on_close: Callable[[], None],
        gauge: Gauge | None,
    ) -> None:
        self._on_open = on_open
        self._on_half_open = on_half_open
        self._on_close = on_close
        self._gauge = gauge

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            self._on_open()
        elif new_state.name == pybreaker.STATE_HALF_OPEN:
            self._on_half_open()
        elif new_state.name == pybreaker.STATE_CLOSED:
            self._on_close()
        if self._gauge is not None:
            self._gauge.set(BREAKER_STATES[new_state.name])
        log = logger.warning if new_state.name == pybreaker.STATE_OPEN else logger.info
        log("remote.breaker", target=cb.name, state=new_state.name, previous=old_state.name if old_state else None)


class BreakerRegistry:
    """One breaker per target base URL, shared by every client of that target it is given to:
    the application container holds the process's (``ApplicationContainer.breakers``)."""

    def __init__(self, clock: Clock = _utc_now, metrics: Metrics | None = None) -> None:
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._breakers: dict[str, TargetBreaker] = {}
        self._lock = threading.Lock()

    def breaker_for(
        self,
        target: str,
        *,
        failures: int,
        reset_seconds: float,
        probe: Callable[[float], bool] | None = None,
        probe_seconds: float = 0.5,
    ) -> TargetBreaker:
        """The target's breaker; the options (and probe) of the first client of a target make it."""
        with self._lock:
            if target not in self._breakers:
                self._breakers[target] = TargetBreaker(
                    target,
                    failures=failures,
                    reset_seconds=reset_seconds,
                    clock=self._clock,
                    probe=probe,
                    probe_seconds=probe_seconds,
                    gauge=self._metrics.remote_breaker_state.labels(target),
                )
            return self._breakers[target]
