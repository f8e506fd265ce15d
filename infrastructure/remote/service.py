"""Calls to another context's service: JSON over HTTP that fails fast and says so.

A context's published client (``contexts/<name>/client.py``) says which paths to call and
decodes the answers; :class:`RemoteService` makes each call safe to make from a request:

* every attempt has connect and read timeouts, and all attempts together stay within a
  deadline: the read timeout, or what is left of the incoming request's ``X-Deadline-Ms`` if
  that is shorter (only another service of the shop can set it: ``http/request_id.py``). The
  remaining milliseconds travel on as ``X-Deadline-Ms``;
* the service token, the request id and the caller's ``traceparent`` travel with each attempt,
  and a ``User-Agent`` naming the shop's version and the contexts the calling process serves;
* only calls the caller marks idempotent are retried (tenacity), after connection errors,
  timeouts and 502/503/504, with exponential backoff drawn from the upper half of each step
  ("equal jitter"), and never past the deadline;
* each call asks its target's circuit breaker first and tells it the outcome (:mod:`.breakers`).

Whatever the cause, an unreachable target is :class:`DependencyUnavailable` (503 at the edge).
A 401 means the target refuses the service token: :class:`DependencyMisconfigured` (a 503 that
names the misconfiguration), never retried. Other answers below 500 are returned for the client
to decode; other 5xx are :class:`UnexpectedAnswer`.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence
from math import ceil
from typing import TYPE_CHECKING, Any

import httpx
import pybreaker
import structlog
import tenacity

from infrastructure.backoff import equal_jitter
from infrastructure.errors import DependencyMisconfigured, DependencyUnavailable, UnexpectedAnswer
from infrastructure.observability.metrics import Metrics
from infrastructure.observability.tracing import ChildSpansOnly, traceparent_to_pass_on
from infrastructure.remote.breakers import BreakerRegistry, CircuitOpen, TargetBreaker
from infrastructure.remote.options import RemoteOptions
from infrastructure.request_context import (
    DEADLINE_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    current_request_id,
    remaining_seconds,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = structlog.get_logger(__name__)

RETRYABLE_STATUSES = frozenset({502, 503, 504})
# An attempt that would have less time than this before the deadline is not started.
MIN_ATTEMPT_SECONDS = 0.05
MAX_RETRY_AFTER_SECONDS = 300
JSON = "application/json"
TOKEN_REFUSED = "it refuses this service's SERVICE_TOKEN; every service must be given the same one"
QueryParams = Mapping[str, str | Sequence[str]]


class _Unavailable(Exception):
    """One attempt failed in a way a later attempt may not; ``retry_after`` is the target's hint."""

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Deadline:
    """A point on the monotonic clock by which the whole call must be over; ``callers``: it is
    the caller's (shorter than the read timeout), not the call's own budget."""

    def __init__(self, seconds_from_now: float, *, callers: bool = False) -> None:
        self._at = time.monotonic() + seconds_from_now
        self.callers = callers

    def remaining(self) -> float:
        return self._at - time.monotonic()


class RemoteService:
    """JSON over HTTP to one target service, as described in this module's docstring.

    ``name`` names the service in errors and logs (its URL never reaches clients). Thread-safe:
    one instance serves every request of the process, over one connection pool.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        token: str,
        options: RemoteOptions = RemoteOptions(),  # noqa: B008 - frozen, so one shared default is safe
        *,
        breakers: BreakerRegistry,
        transport: httpx.BaseTransport | None = None,
        metrics: Metrics | None = None,
        tracing: TracerProvider | None = None,
    ) -> None:
        """``tracing``: a client span per attempt, its context sent on; None, the caller's
        ``traceparent`` is passed on unchanged."""
        self.name = name
        self._options = options
        target = base_url.rstrip("/")
        retried = (metrics or Metrics()).remote_retries.labels(target)
        self._breaker = breakers.breaker_for(
            target,
            failures=options.breaker_failures,
            reset_seconds=options.breaker_reset_seconds,
            probe=self._ready if options.ready_path else None,
            probe_seconds=options.probe_seconds,
        )
        # One retry policy per kind of call, built once (tenacity >= 9 keeps each call's state
        # per thread); a call's deadline reaches the stop condition with the attempt's arguments.
        # So no call may re-enter request() on the same service from inside _attempt (the
        # breaker's probe, which runs there, uses the client directly): the inner call would
        # reset the outer one's per-thread iteration state (tenacity's iter_state) mid-call.
        self._retrying = {
            idempotent: tenacity.Retrying(
                stop=tenacity.stop_any(
                    tenacity.stop_after_attempt(options.attempts if idempotent else 1), _NoTimeForAnother()
                ),
                wait=self._backoff,
                retry=tenacity.retry_if_exception_type(_Unavailable),
                before_sleep=lambda _: retried.inc(),
                reraise=True,
            )
            for idempotent in (True, False)
        }
        # Requests go straight to the transport (see _send). trust_env=False: service-to-service
        # calls never take settings (certificates here; proxies are never read) from the environment:
        # an internal CA is given as REMOTE_CA_FILE.
        self._target = target
        self._transport = transport or httpx.HTTPTransport(
            limits=_limits(options), trust_env=False, verify=_verify(options)
        )
        if tracing is not None:
            from opentelemetry.instrumentation.httpx import SyncOpenTelemetryTransport

            # Calls made outside any trace (readiness's access checks) start none.
            self._transport = SyncOpenTelemetryTransport(self._transport, tracer_provider=ChildSpansOnly(tracing))
        self._token_header = f"Bearer {token}"
        self._user_agent = options.user_agent

    @property
    def breaker(self) -> TargetBreaker:
        return self._breaker

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: QueryParams | None = None,
        json: Any = None,
        own_budget: bool = False,
        probe: bool = False,
    ) -> httpx.Response:
        """The target's answer below 500. Raises :class:`DependencyUnavailable` when there is
        none in time, and :class:`UnexpectedAnswer` for any other 5xx.

        ``own_budget``: the call gets the read timeout, whatever is left of the caller's
        deadline — for a compensation, such as releasing a reservation whose outcome is
        unknown: the failure it undoes may well have spent the caller's time.

        ``probe``: the whole call gets the connect timeout, as a caller's deadline would give
        it — for a health check, which an orchestrator repeats and must not keep waiting for a
        target that hangs; a timeout that cut it short is not counted by the breaker, so probes
        cannot open it for the calls that may wait longer."""
        if own_budget:
            deadline = _Deadline(self._options.read_timeout_seconds)
        elif probe:
            deadline = self._deadline(self._options.connect_timeout_seconds)
        else:
            deadline = self._deadline()
        try:
            return self._retrying[idempotent](self._attempt, method, path, params, json, deadline=deadline)
        except CircuitOpen as error:
            raise DependencyUnavailable(self.name, ceil(error.seconds_left), "circuit open") from error
        except _Unavailable as error:
            raise DependencyUnavailable(self.name, self._retry_after(error), error.reason) from error

    def close(self) -> None:
        self._transport.close()

    def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        timeout: httpx.Timeout,
        params: QueryParams | None = None,
        body: Any = None,
    ) -> httpx.Response:
        """One request, read to its end, sent straight to the transport. ``httpx.Client``'s
        layers around it do nothing a call between services needs and cost about a third of the
        client's CPU per call (bench/README.md, split.py): its cookie jar (which would also send
        a cookie the target set once with every later call, whoever's request it serves), its
        auth and redirect flows (no redirect is followed) and the URL merging."""
        request = httpx.Request(
            method,
            self._target + _with_params(path, params),
            json=body,
            headers=headers,
            extensions={"timeout": timeout.as_dict()},
        )
        response = self._transport.handle_request(request)
        response.request = request
        try:
            response.read()
        finally:
            response.close()
        return response

    def _ready(self, seconds_left: float) -> bool:
        """The breaker's probe: whether the target's readiness endpoint answers 200 within the
        connect timeout, or the ``seconds_left`` to the caller's deadline if fewer. Sent without
        the service token (readiness is public, and the token goes only where it is needed); a
        failure of any kind is an answer (not ready), never counted, never the caller's error."""
        assert self._options.ready_path is not None
        timeout = max(0.0, min(self._options.connect_timeout_seconds, seconds_left))
        try:
            headers = {"Accept": JSON, "User-Agent": self._user_agent}
            answer = self._send("GET", self._options.ready_path, headers, httpx.Timeout(timeout))
            return answer.status_code == 200
        except Exception as error:  # noqa: BLE001 - whatever went wrong, the target is not shown ready
            logger.info("remote.breaker_probe_failed", target=self.name, error=f"{type(error).__name__}: {error}")
            return False

    def _deadline(self, at_most: float | None = None) -> _Deadline:
        """The read timeout, or the caller's deadline (or ``at_most``, the caller's own limit)
        when that leaves less: a deadline only ever shortens a call, never lengthens it past
        the configured budget."""
        own = self._options.read_timeout_seconds
        limits = [limit for limit in (remaining_seconds(), at_most) if limit is not None]
        callers = min(limits, default=own)
        if callers >= own:
            return _Deadline(own)
        return _Deadline(callers, callers=True)

    def _attempt(
        self, method: str, path: str, params: QueryParams | None, body: Any, deadline: _Deadline
    ) -> httpx.Response:
        admitted_in = self._breaker.admit(_time_left(deadline))
        remaining = _time_left(deadline)  # after admit, which may have spent time on a probe
        try:
            response = self._send(
                method, path, self._headers(remaining), self._timeout(remaining), params=params, body=body
            )
        except httpx.TransportError as error:
            if self._cut_short_by_caller(error, deadline, remaining):
                raise _Unavailable(f"the caller's deadline passed ({type(error).__name__})") from error
            self._breaker.record_failure(admitted_in)
            raise _Unavailable(f"{type(error).__name__}: {error}") from error
        if response.status_code < 500:
            self._breaker.record_success(admitted_in)
            if response.status_code == 401:
                raise DependencyMisconfigured(self.name, TOKEN_REFUSED)
            return response
        self._breaker.record_failure(admitted_in)
        if response.status_code in RETRYABLE_STATUSES:
            raise _Unavailable(f"answered {response.status_code}", _retry_after_header(response))
        raise UnexpectedAnswer(self.name, response.status_code, response.text[:200])

    def _cut_short_by_caller(self, error: httpx.TransportError, deadline: _Deadline, remaining: float) -> bool:
        """Whether ``error`` is a timeout that fired only because the caller's deadline left the
        attempt less than its configured timeout: the caller's impatience, not the target's
        failure, so the breaker must not count it (else a caller could open it for everyone)."""
        if not deadline.callers or not isinstance(error, httpx.TimeoutException):
            return False
        connecting = isinstance(error, (httpx.ConnectTimeout, httpx.PoolTimeout))
        configured = self._options.connect_timeout_seconds if connecting else self._options.read_timeout_seconds
        return remaining < configured

    def _headers(self, remaining: float) -> dict[str, str]:
        return _context_headers(self._token_header, self._user_agent, remaining)

    def _timeout(self, remaining: float) -> httpx.Timeout:
        connect = min(self._options.connect_timeout_seconds, remaining)
        read = min(self._options.read_timeout_seconds, remaining)
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)

    def _backoff(self, retry_state: tenacity.RetryCallState) -> float:
        return equal_jitter(
            retry_state.attempt_number, self._options.backoff_seconds, self._options.backoff_max_seconds
        )

    def _retry_after(self, error: _Unavailable) -> int:
        """Until the breaker lets a trial through if it is open, else the target's own hint, else 1."""
        if self._breaker.state == pybreaker.STATE_OPEN:
            return ceil(self._breaker.seconds_until_trial())
        return min(error.retry_after or 1, MAX_RETRY_AFTER_SECONDS)


class _NoTimeForAnother(tenacity.stop.stop_base):
    """Stop when the next attempt would start too close to the call's deadline (the attempt's
    ``deadline`` argument), or after it."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        deadline: _Deadline = retry_state.kwargs["deadline"]
        return deadline.remaining() - retry_state.upcoming_sleep < MIN_ATTEMPT_SECONDS


def _limits(options: RemoteOptions) -> httpx.Limits:
    """httpx's pool sizes, its idle connections dropped after ``idle_connection_seconds``."""
    idle = options.idle_connection_seconds
    defaults = httpx.Limits()
    return httpx.Limits(
        max_connections=defaults.max_connections,
        max_keepalive_connections=defaults.max_keepalive_connections if idle > 0 else 0,
        keepalive_expiry=idle,
    )


def _verify(options: RemoteOptions) -> ssl.SSLContext | bool:
    """How https targets' certificates are checked: against ``options.ca_file`` alone when
    set (an internal CA), else httpx's public ones (certifi)."""
    return ssl.create_default_context(cafile=options.ca_file) if options.ca_file else True


def _time_left(deadline: _Deadline) -> float:
    """The seconds left for an attempt; raises :class:`_Unavailable` when too few are."""
    remaining = deadline.remaining()
    if remaining < MIN_ATTEMPT_SECONDS:
        raise _Unavailable("deadline passed")
    return remaining


def _context_headers(token_header: str, user_agent: str, seconds_left: float) -> dict[str, str]:
    """An attempt's headers: the service token, JSON accepted, who calls, and the caller's context."""
    headers = {
        "Authorization": token_header,
        "Accept": JSON,
        "User-Agent": user_agent,
        DEADLINE_HEADER: str(max(1, int(seconds_left * 1000))),
    }
    request_id, traceparent = current_request_id(), traceparent_to_pass_on()
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    if traceparent:
        headers[TRACEPARENT_HEADER] = traceparent
    return headers


def _with_params(path: str, params: QueryParams | None) -> str:
    """``path`` with ``params`` added after any query string it carries, which is kept (as
    ``params`` of httpx would not keep it)."""
    encoded = str(httpx.QueryParams(params)) if params else ""
    if not encoded:
        return path
    return f"{path}{'&' if '?' in path else '?'}{encoded}"


def _retry_after_header(response: httpx.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None
