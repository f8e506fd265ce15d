"""Calls that leave the process (infrastructure/remote/) against real HTTP servers on loopback:
timeouts, deadlines, retries only where idempotent, the circuit breaker, and the headers that
carry the caller's context. Faults come from small servers in threads (tests/http_servers.py).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

import httpx
import pytest
from pydantic import ValidationError

from app.config import read_settings, settings_problems
from infrastructure.errors import DependencyMisconfigured, DependencyUnavailable, UnexpectedAnswer
from infrastructure.remote.breakers import BreakerRegistry, TargetBreaker
from infrastructure.remote.options import RemoteOptions
from infrastructure.remote.service import RemoteService
from infrastructure.request_context import (
    DEADLINE_HEADER,
    bind_deadline,
    bind_request_id,
    bind_traceparent,
)
from tests.http_servers import Answer, ScriptedServer, SilentServer, dead_url, serve_app

TOKEN = "remote-calls-test-service-token-0123456789"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Quick retries, so that tests with several attempts take milliseconds.
FAST = RemoteOptions(connect_timeout_seconds=2, read_timeout_seconds=5, backoff_seconds=0.01, backoff_max_seconds=0.02)
# How long a test waits for a call that must end by itself before it calls the wait a failure.
SAFETY_NET_SECONDS = 4.0


class FakeClock:
    """The breakers' clock, moved by the test: the reset timeout passes without waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


MakeService = Callable[..., RemoteService]


@pytest.fixture
def make_service() -> Iterator[MakeService]:
    """``make_service(url, breakers=None, transport=None, **options)``: a RemoteService with FAST
    options changed by ``options``, its own breakers unless given; all closed at the end."""
    made: list[RemoteService] = []

    def make(
        url: str, breakers: BreakerRegistry | None = None, transport: httpx.BaseTransport | None = None, **options: Any
    ) -> RemoteService:
        chosen = RemoteOptions(**{**FAST.__dict__, **options})
        service = RemoteService(
            "product", url, TOKEN, chosen, breakers=breakers or BreakerRegistry(), transport=transport
        )
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


@pytest.fixture(autouse=True)
def fresh_request_context() -> Iterator[None]:
    """Tests bind a request's context in the test thread: unbind it afterwards."""
    yield
    bind_request_id(None)
    bind_traceparent(None)
    bind_deadline(None)


def get(service: RemoteService, *, idempotent: bool = True) -> httpx.Response:
    return service.request("GET", "/internal/v1/thing", params={"ids": ["a", "b"]}, idempotent=idempotent)


def fail(service: RemoteService, times: int) -> None:
    """``times`` calls, each answered as unavailable: what it takes to open a breaker."""
    for _ in range(times):
        with pytest.raises(DependencyUnavailable):
            get(service)


def opened_on(clock: FakeClock, make_service: MakeService, url: str, **options: Any) -> RemoteService:
    """A service whose breaker (two failures, ten seconds open, on ``clock``) has just opened;
    ``options`` are the service's others (its transport, its probe)."""
    service = make_service(
        url, breakers=BreakerRegistry(clock), attempts=1, breaker_failures=2, breaker_reset_seconds=10, **options
    )
    fail(service, 2)
    return service


# --- connections ---------------------------------------------------------------------------


def test_calls_reuse_a_connection_until_it_has_been_idle_for_idle_connection_seconds(
    make_service: MakeService,
) -> None:
    """Kept alive for the next call, and dropped before the target (or a load balancer before it)
    would close it under a call's feet."""
    with ScriptedServer(then=Answer(200, {})) as server:
        service = make_service(server.url, idle_connection_seconds=0.3)
        get(service)
        get(service)
        time.sleep(0.6)
        get(service)
    first, second, after_idling = (received.client_port for received in server.received)
    assert first == second
    assert after_idling != first


def test_idle_connections_are_let_go_after_their_own_setting_not_this_processs_keep_alive() -> None:
    """A 65 s WEB_KEEPALIVE_SECONDS behind a 60 s load balancer must not keep calls' connections
    idle 64 s: the target's idle timeout is not this process's to know."""
    assert read_settings({}).remote_options().idle_connection_seconds == 4
    assert read_settings({"web_keepalive_seconds": 65}).remote_options().idle_connection_seconds == 4
    assert (
        read_settings({"web_keepalive_seconds": 65, "remote_idle_connection_seconds": 0.5})
        .remote_options()
        .idle_connection_seconds
        == 0.5
    )


def test_idle_connections_are_let_go_before_a_shorter_keep_alive_of_the_deployment_ends() -> None:
    """Unset, the idle time stays under the deployment's own keep-alive (which its services
    share), so a connection is never reused as its target closes it."""
    assert read_settings({"web_keepalive_seconds": 2}).remote_options().idle_connection_seconds == 1
    assert read_settings({"web_keepalive_seconds": 0}).remote_options().idle_connection_seconds == 0


# --- what each call carries ---------------------------------------------------------------


def test_every_call_carries_the_token_the_request_id_the_trace_and_the_deadline(make_service: MakeService) -> None:
    bind_request_id("req-42")
    bind_traceparent(TRACEPARENT)
    bind_deadline(2.0)
    with ScriptedServer(then=Answer(200, {"ok": True})) as server:
        response = get(make_service(server.url))

    assert response.json() == {"ok": True}
    [received] = server.received
    assert received.path == "/internal/v1/thing?ids=a&ids=b"
    assert received.headers["Authorization"] == f"Bearer {TOKEN}"
    assert received.headers["X-Request-ID"] == "req-42"
    assert received.headers["traceparent"] == TRACEPARENT
    assert 0 < int(received.headers[DEADLINE_HEADER]) <= 2000


def test_calls_and_probes_name_the_shop_its_version_and_the_calling_processs_contexts(
    make_service: MakeService,
) -> None:
    """The target's logs (and a proxy's) tell which process of the shop called."""
    settings = read_settings(
        {
            "served_contexts": "order,user",
            "product_service_url": "http://product.test",
            "service_token": TOKEN,
            "token_secret": TOKEN,
            "events_broker_url": "amqp://guest:guest@broker.test//",
        }
    )
    options = settings.remote_options()
    clock = FakeClock()
    with ScriptedServer(then=Answer(503)) as server:
        service = opened_on(clock, make_service, server.url, user_agent=options.user_agent)
        clock.advance(0.6)
        with pytest.raises(DependencyUnavailable):
            get(service)  # probed: not ready

    assert calls_and_probes(server) == ["call", "call", "probe"]
    expected = f"modular-shop/{version('modular-shop')} (user,order)"
    assert [received.headers.get("User-Agent") for received in server.received] == [expected] * 3


@pytest.mark.parametrize(
    ("path", "params", "sent"),
    [
        ("/internal/v1/thing?expand=prices", {"ids": ["a", "b"]}, "/internal/v1/thing?expand=prices&ids=a&ids=b"),
        ("/internal/v1/thing?ids=x", {"ids": ["a b"]}, "/internal/v1/thing?ids=x&ids=a+b"),
        ("/internal/v1/thing?expand=prices", {}, "/internal/v1/thing?expand=prices"),
    ],
)
def test_a_query_string_in_the_path_is_kept_beside_the_parameters(
    make_service: MakeService, path: str, params: dict[str, Any], sent: str
) -> None:
    with ScriptedServer(then=Answer(200, {})) as server:
        make_service(server.url).request("GET", path, params=params, idempotent=True)

    [received] = server.received
    assert received.path == sent


def test_a_cookie_the_target_sets_is_not_sent_with_later_calls(make_service: MakeService) -> None:
    """One client serves every request of the process: a cookie kept from one answer would go
    with every later call, whoever's request it serves."""
    with ScriptedServer(Answer(200, {}, {"Set-Cookie": "session=someones; Path=/"})) as server:
        service = make_service(server.url)
        get(service)
        get(service)

    assert [received.headers.get("Cookie") for received in server.received] == [None, None]


def test_outside_a_request_the_deadline_is_the_read_timeout_and_no_ids_are_made_up(make_service: MakeService) -> None:
    with ScriptedServer() as server:
        get(make_service(server.url, read_timeout_seconds=3))

    [received] = server.received
    assert 0 < int(received.headers[DEADLINE_HEADER]) <= 3000
    assert "X-Request-ID" not in received.headers
    assert "traceparent" not in received.headers


def test_each_attempt_gets_connect_and_read_timeouts_within_what_is_left_of_the_deadline(
    make_service: MakeService,
) -> None:
    timeouts: list[dict[str, float]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json={})

    service = make_service(
        "http://product.test", transport=httpx.MockTransport(answer), connect_timeout_seconds=1, read_timeout_seconds=5
    )
    get(service)
    bind_deadline(0.5)
    get(service)

    unbounded, bounded = timeouts
    assert unbounded["connect"] == 1
    assert 1 < unbounded["read"] <= 5
    assert 0 < bounded["connect"] <= 0.5
    assert 0 < bounded["read"] <= 0.5


# --- timeouts and deadlines -----------------------------------------------------------------


def test_a_server_that_never_answers_is_unavailable_once_the_read_timeout_is_spent(
    make_service: MakeService,
) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with SilentServer() as server:
            service = make_service(server.url, read_timeout_seconds=0.3, attempts=3)
            call = pool.submit(get, service)
            # Not a timing assertion: a call that ignored its timeouts would block here for good.
            error = call.exception(timeout=SAFETY_NET_SECONDS)
            accepted = server.accepted
    finally:
        pool.shutdown(wait=False)

    assert isinstance(error, DependencyUnavailable), error
    assert error.service == "product"
    assert "Timeout" in error.reason
    assert isinstance(error.__cause__, Exception)
    # The read timeout was the whole budget: no time was left for a second attempt.
    assert accepted == 1


def test_retries_stop_at_the_callers_deadline(make_service: MakeService) -> None:
    bind_deadline(0.5)
    with ScriptedServer(then=Answer(503)) as server:
        # The first retry would start after at least half of backoff_seconds: past the deadline.
        service = make_service(server.url, attempts=5, backoff_seconds=2, backoff_max_seconds=2)
        with pytest.raises(DependencyUnavailable) as raised:
            get(service)

    assert len(server.received) == 1
    # Given up at once on the 503, not after sleeping into the deadline.
    assert raised.value.reason == "answered 503"


def test_a_call_whose_deadline_has_passed_is_not_made(make_service: MakeService) -> None:
    bind_deadline(-1.0)
    with ScriptedServer() as server, pytest.raises(DependencyUnavailable) as raised:
        get(make_service(server.url))

    assert raised.value.reason == "deadline passed"
    assert server.received == []


def test_a_call_on_its_own_budget_is_made_when_the_callers_deadline_has_passed(make_service: MakeService) -> None:
    """A compensation (releasing a reservation after a timed-out reserve) still gets its chance."""
    bind_deadline(-1.0)
    with ScriptedServer() as server:
        make_service(server.url).request("POST", "/anything", idempotent=True, own_budget=True)

    assert len(server.received) == 1


def test_a_refused_connection_is_unavailable(make_service: MakeService) -> None:
    with pytest.raises(DependencyUnavailable) as raised:
        get(make_service(dead_url()))
    assert "ConnectError" in raised.value.reason


# --- retries --------------------------------------------------------------------------------


def test_an_idempotent_call_is_retried_after_502_503_504(make_service: MakeService) -> None:
    with ScriptedServer(Answer(503), Answer(502), Answer(504), then=Answer(200, {"ok": True})) as server:
        response = get(make_service(server.url, attempts=4))

    assert response.json() == {"ok": True}
    assert len(server.received) == 4


def test_a_call_not_marked_idempotent_is_tried_once(make_service: MakeService) -> None:
    with ScriptedServer(Answer(503), then=Answer(200)) as server, pytest.raises(DependencyUnavailable):
        get(make_service(server.url, attempts=4), idempotent=False)

    assert len(server.received) == 1


def test_retries_are_bounded_by_the_attempts(make_service: MakeService) -> None:
    server = ScriptedServer(then=Answer(503, headers={"Retry-After": "7"}))
    with server, pytest.raises(DependencyUnavailable) as raised:
        get(make_service(server.url, attempts=3))

    assert len(server.received) == 3
    assert raised.value.retry_after_seconds == 7  # the target's own hint is passed on


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_an_answer_below_500_is_returned_as_it_is_and_not_retried(make_service: MakeService, status: int) -> None:
    with ScriptedServer(then=Answer(status, {"code": "x"})) as server:
        response = get(make_service(server.url))

    assert (response.status_code, response.json()) == (status, {"code": "x"})
    assert len(server.received) == 1


def test_a_refused_service_token_is_a_misconfiguration_not_retried_and_not_an_outage(
    make_service: MakeService,
) -> None:
    with ScriptedServer(then=Answer(401, {"detail": "a service token is required"})) as server:
        service = make_service(server.url, attempts=3, breaker_failures=1)
        with pytest.raises(DependencyMisconfigured) as raised:
            get(service)

    assert "SERVICE_TOKEN" in raised.value.problem
    assert len(server.received) == 1
    assert service.breaker.state == "closed"


def test_a_500_is_unexpected_and_not_retried(make_service: MakeService) -> None:
    with ScriptedServer(then=Answer(500, {"detail": "bug"})) as server, pytest.raises(UnexpectedAnswer) as raised:
        get(make_service(server.url))

    assert raised.value.status == 500
    assert len(server.received) == 1


def test_calls_on_one_service_in_two_threads_keep_their_own_attempts_and_deadline(make_service: MakeService) -> None:
    """The service's one retry policy serves every thread: a call that keeps retrying against
    503s with a short deadline, and a call that succeeds in the middle of it, each count their
    own attempts and stop at their own deadline."""
    received: list[tuple[str, int]] = []
    failing_attempted, succeeded = threading.Event(), threading.Event()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, deadline = environ["PATH_INFO"], int(environ["HTTP_X_DEADLINE_MS"])
        received.append((path, deadline))
        if path == "/ok":
            failing_attempted.wait(SAFETY_NET_SECONDS)
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b"{}"]
        failing_attempted.set()
        succeeded.wait(SAFETY_NET_SECONDS)  # the other call runs while this one is mid-attempt
        time.sleep(0.2)  # ten attempts take longer than the short deadline
        start_response("503 Service Unavailable", [("Content-Type", "application/json")])
        return [b"{}"]

    with serve_app(app) as url:
        service = make_service(url, attempts=10, breaker_failures=1000)

        def failing() -> float:
            bind_deadline(1.5)
            started = time.monotonic()
            with pytest.raises(DependencyUnavailable):
                service.request("GET", "/fail", idempotent=True)
            return time.monotonic() - started

        def succeeding() -> int:
            try:
                return service.request("GET", "/ok", idempotent=True).status_code
            finally:
                succeeded.set()

        with ThreadPoolExecutor(2) as pool:
            failed_after, status = pool.submit(failing), pool.submit(succeeding)
            assert status.result(timeout=SAFETY_NET_SECONDS) == 200
            assert failed_after.result(timeout=SAFETY_NET_SECONDS) < 3.0

    failing_deadlines = [deadline for path, deadline in received if path == "/fail"]
    assert 2 <= len(failing_deadlines) < 10
    assert all(deadline <= 1500 for deadline in failing_deadlines)
    assert [deadline > 4000 for path, deadline in received if path == "/ok"] == [True]  # the read timeout's


# --- the circuit breaker --------------------------------------------------------------------


def test_the_breaker_opens_after_consecutive_failures_and_then_fails_fast_without_calling(
    make_service: MakeService,
) -> None:
    with ScriptedServer(then=Answer(503)) as server:
        service = make_service(server.url, attempts=1, breaker_failures=3, breaker_reset_seconds=30)
        fail(service, 3)
        assert service.breaker.state == "open"

        with pytest.raises(DependencyUnavailable) as raised:
            get(service)

    assert len(server.received) == 3
    assert raised.value.reason == "circuit open"
    assert 1 <= raised.value.retry_after_seconds <= 30


def test_transport_failures_count_toward_the_breaker(make_service: MakeService) -> None:
    service = make_service(dead_url(), attempts=2, breaker_failures=4)
    fail(service, 2)
    assert service.breaker.state == "open"


def test_answers_below_500_do_not_open_the_breaker(make_service: MakeService) -> None:
    with ScriptedServer(then=Answer(404)) as server:
        service = make_service(server.url, breaker_failures=2)
        for _ in range(5):
            assert get(service).status_code == 404

    assert service.breaker.state == "closed"
    assert len(server.received) == 5


def test_a_success_resets_the_count_of_consecutive_failures(make_service: MakeService) -> None:
    with ScriptedServer(Answer(503), Answer(200), Answer(503), then=Answer(200)) as server:
        service = make_service(server.url, attempts=1, breaker_failures=2)
        for expected in (DependencyUnavailable, None, DependencyUnavailable, None):
            if expected is None:
                get(service)
            else:
                with pytest.raises(expected):
                    get(service)

    assert service.breaker.state == "closed"


def test_after_the_reset_timeout_a_trial_call_closes_the_breaker_when_it_succeeds(make_service: MakeService) -> None:
    clock = FakeClock()
    with ScriptedServer(then=Answer(503)) as server:
        service = opened_on(clock, make_service, server.url)
        server.then = Answer(200, {"back": True})
        with pytest.raises(DependencyUnavailable):
            get(service)  # still open: the service is not asked
        assert len(server.received) == 2

        clock.advance(11)
        assert get(service).json() == {"back": True}
        assert service.breaker.state == "closed"
        get(service)

    assert len(server.received) == 4


def test_a_failed_trial_call_opens_the_breaker_again(make_service: MakeService) -> None:
    clock = FakeClock()
    with ScriptedServer(then=Answer(503)) as server:
        service = opened_on(clock, make_service, server.url)
        clock.advance(11)
        with pytest.raises(DependencyUnavailable):
            get(service)  # the trial
        assert service.breaker.state == "open"
        with pytest.raises(DependencyUnavailable) as raised:
            get(service)

    assert raised.value.reason == "circuit open"
    assert len(server.received) == 3


def test_clients_of_one_target_share_its_breaker_and_other_targets_are_unaffected(make_service: MakeService) -> None:
    breakers = BreakerRegistry()
    with ScriptedServer(then=Answer(503)) as failing, ScriptedServer(then=Answer(200)) as healthy:
        first = make_service(failing.url, breakers=breakers, attempts=1, breaker_failures=1)
        second = make_service(failing.url + "/", breakers=breakers, attempts=1, breaker_failures=1)
        other = make_service(healthy.url, breakers=breakers, attempts=1, breaker_failures=1)
        with pytest.raises(DependencyUnavailable):
            get(first)
        with pytest.raises(DependencyUnavailable):
            get(second)
        assert get(other).status_code == 200

    assert len(failing.received) == 1


def test_the_breaker_does_not_make_calls_to_a_target_wait_for_each_other(make_service: MakeService) -> None:
    """pybreaker's own ``call`` holds a lock while the call runs; two calls must be in flight at once."""
    gate = threading.Barrier(2, timeout=SAFETY_NET_SECONDS)
    with ScriptedServer(then=Answer(200, {"ok": True}), gate=gate) as server:
        service = make_service(server.url, attempts=1, read_timeout_seconds=2 * SAFETY_NET_SECONDS)
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda _: get(service).json(), range(2)))

    assert answers == [{"ok": True}, {"ok": True}]


# --- the caller's deadline and the breaker ---------------------------------------------------


def test_a_timeout_that_only_the_callers_deadline_caused_does_not_count_toward_the_breaker(
    make_service: MakeService,
) -> None:
    bind_deadline(0.2)
    with SilentServer() as server:
        service = make_service(server.url, read_timeout_seconds=5, attempts=1, breaker_failures=1)
        with pytest.raises(DependencyUnavailable) as raised:
            get(service)

    assert "deadline" in raised.value.reason
    assert service.breaker.state == "closed"


def test_a_timeout_at_the_configured_read_timeout_counts_toward_the_breaker(make_service: MakeService) -> None:
    bind_deadline(3.0)  # longer than the read timeout: the target had all the time it is given
    with SilentServer() as server:
        service = make_service(server.url, read_timeout_seconds=0.2, attempts=1, breaker_failures=1)
        with pytest.raises(DependencyUnavailable):
            get(service)

    assert service.breaker.state == "open"


def test_a_callers_deadline_never_lengthens_a_call_past_the_read_timeout(make_service: MakeService) -> None:
    bind_deadline(600.0)
    with ScriptedServer() as server:
        get(make_service(server.url, read_timeout_seconds=3))

    [received] = server.received
    assert 0 < int(received.headers[DEADLINE_HEADER]) <= 3000


# --- a restarted target ends the breaker's wait ----------------------------------------------


def calls_and_probes(server: ScriptedServer) -> list[str]:
    """What the target was asked, in order: ``"call"`` or ``"probe"`` (its readiness)."""
    return ["probe" if received.path == "/readyz" else "call" for received in server.received]


def test_while_open_a_target_that_answers_ready_takes_the_next_call_before_the_reset_timeout(
    make_service: MakeService,
) -> None:
    clock = FakeClock()
    with ScriptedServer(then=Answer(503)) as server:
        service = opened_on(clock, make_service, server.url)
        server.then = Answer(200, {"back": True})
        clock.advance(0.6)  # a probe is due; the reset timeout (10 s) is far off

        assert get(service).json() == {"back": True}
        assert service.breaker.state == "closed"

    assert calls_and_probes(server) == ["call", "call", "probe", "call"]
    assert "Authorization" not in server.received[2].headers


def test_while_open_the_target_is_probed_at_most_every_half_second_and_an_unready_one_keeps_it_open(
    make_service: MakeService,
) -> None:
    clock = FakeClock()
    with ScriptedServer(then=Answer(503)) as server:
        service = opened_on(clock, make_service, server.url)
        with pytest.raises(DependencyUnavailable):
            get(service)  # just opened: no probe yet
        clock.advance(0.6)
        for _ in range(3):  # the first probes and fails, the others come before the next probe is due
            with pytest.raises(DependencyUnavailable) as raised:
                get(service)
        clock.advance(0.6)
        with pytest.raises(DependencyUnavailable):
            get(service)

    assert calls_and_probes(server) == ["call", "call", "probe", "probe"]
    assert service.breaker.state == "open"
    assert raised.value.reason == "circuit open"
    assert raised.value.retry_after_seconds == 1  # the next probe, not the reset timeout's end


def test_without_a_readiness_path_only_the_reset_timeout_ends_the_wait(make_service: MakeService) -> None:
    clock = FakeClock()
    with ScriptedServer(then=Answer(503)) as server:
        service = opened_on(clock, make_service, server.url, ready_path=None)
        server.then = Answer(200)
        clock.advance(5)
        with pytest.raises(DependencyUnavailable):
            get(service)

    assert calls_and_probes(server) == ["call", "call"]


def ready_but_failing(asked: list[str], *, ready: Callable[[], int] = lambda: 200) -> httpx.MockTransport:
    """A target whose readiness endpoint answers ``ready()`` and whose calls all answer 503;
    ``asked`` gets ``"probe"`` or ``"call"`` for each request, in order."""

    def answer(request: httpx.Request) -> httpx.Response:
        probe = request.url.path == "/readyz"
        asked.append("probe" if probe else "call")
        return httpx.Response(ready() if probe else 503)

    return httpx.MockTransport(answer)


def test_a_target_ready_but_failing_its_trial_is_let_through_once_per_reset_timeout(make_service: MakeService) -> None:
    """A probe's "ready" that a failed trial belied is not believed again until the breaker
    closes: the reset timeout alone lets trials through, as it would without a probe."""
    clock = FakeClock()
    asked: list[str] = []
    service = opened_on(clock, make_service, "http://product.test", transport=ready_but_failing(asked))
    for _ in range(2):  # two reset periods, each probed every 0.6 s: one trial each
        for _ in range(15):
            clock.advance(0.6)
            with pytest.raises(DependencyUnavailable):
                get(service)
        assert service.breaker.state == "open"

    assert asked == ["call", "call", "probe", "call", "call"]  # the probed trial, then the reset's


def test_the_breaker_believes_the_probe_again_once_a_trial_succeeded(make_service: MakeService) -> None:
    clock = FakeClock()
    asked: list[str] = []
    calls_answer = [503]

    def answer(request: httpx.Request) -> httpx.Response:
        probe = request.url.path == "/readyz"
        asked.append("probe" if probe else "call")
        return httpx.Response(200 if probe else calls_answer[0], json={})

    service = opened_on(clock, make_service, "http://product.test", transport=httpx.MockTransport(answer))
    clock.advance(0.6)
    fail(service, 1)  # the probed trial fails: probes are not believed
    calls_answer[0] = 200
    clock.advance(11)
    assert get(service).status_code == 200  # the reset's trial closes the breaker
    calls_answer[0] = 503
    fail(service, 2)  # open again
    clock.advance(0.6)
    fail(service, 1)  # probed, and let through

    assert asked == ["call", "call", "probe", "call", "call", "call", "call", "probe", "call"]


def test_a_probe_that_raises_means_not_ready(make_service: MakeService) -> None:
    """Whatever goes wrong while probing (here a bug in the transport) is "not ready": the call
    fails as if the breaker were open, never with the probe's error."""
    clock = FakeClock()
    asked: list[str] = []

    def broken() -> int:
        raise RuntimeError("a bug while probing")

    service = opened_on(clock, make_service, "http://product.test", transport=ready_but_failing(asked, ready=broken))
    clock.advance(0.6)
    with pytest.raises(DependencyUnavailable) as raised:
        get(service)

    assert raised.value.reason == "circuit open"
    assert asked == ["call", "call", "probe"]
    assert service.breaker.state == "open"


def test_the_probe_spends_the_callers_deadline_and_the_call_gets_only_what_is_left(make_service: MakeService) -> None:
    """The probe runs in the caller's thread, before its call: its timeout is within the
    caller's deadline, and the call's own deadline is what the probe left of it."""
    clock = FakeClock()
    probe_took = 0.3
    probe_timeouts: list[dict[str, float]] = []
    deadlines: list[int] = []
    failing = [True]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            probe_timeouts.append(request.extensions["timeout"])
            threading.Event().wait(probe_took)  # a slow readiness endpoint
            return httpx.Response(200)
        deadlines.append(int(request.headers[DEADLINE_HEADER]))
        return httpx.Response(503 if failing[0] else 200, json={})

    service = opened_on(
        clock,
        make_service,
        "http://product.test",
        transport=httpx.MockTransport(answer),
        connect_timeout_seconds=2,
    )
    failing[0] = False
    clock.advance(0.6)
    bind_deadline(1.0)
    get(service)

    [probe_timeout] = probe_timeouts
    assert 0 < probe_timeout["connect"] <= 1.0
    assert 0 < probe_timeout["read"] <= 1.0
    assert deadlines[-1] <= (1.0 - probe_took) * 1000


def test_while_open_concurrent_callers_start_one_probe_and_the_others_fail_fast(make_service: MakeService) -> None:
    clock = FakeClock()
    callers = 6
    probing, release = threading.Event(), threading.Event()
    probes: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            probes.append(request.url.path)
            probing.set()
            release.wait(SAFETY_NET_SECONDS)  # held until every other caller has been answered
            return httpx.Response(503)
        return httpx.Response(503)

    service = opened_on(clock, make_service, "http://product.test", transport=httpx.MockTransport(answer))
    clock.advance(0.6)

    def call() -> str:
        try:
            get(service)
        except DependencyUnavailable as error:
            return error.reason
        return "answered"

    with ThreadPoolExecutor(max_workers=callers) as pool:
        prober = pool.submit(call)
        assert probing.wait(SAFETY_NET_SECONDS), "no probe started"
        others = [pool.submit(call) for _ in range(callers - 1)]
        reasons = [other.result(timeout=SAFETY_NET_SECONDS) for other in others]
        release.set()
        reasons.append(prober.result(timeout=SAFETY_NET_SECONDS))

    assert probes == ["/readyz"]
    assert reasons == ["circuit open"] * callers


# --- a call admitted before the breaker opened says nothing about the target now -------------


class StaleCallTarget:
    """A target that is down (503) until ``back`` is set, then ready and answering 200; the
    first call it gets (the stale one) hangs until :meth:`fail_the_stale_call` and then times
    out. ``asked`` records ``"stale"``, ``"call"`` or ``"probe"`` for each request, in order."""

    def __init__(self) -> None:
        self.back = False
        self.asked: list[str] = []
        self.stale_sent = threading.Event()
        self._stale_fails = threading.Event()
        self.stale_outcome: Exception | None = None
        self._stale_done = threading.Event()
        self.during_call: Callable[[], None] = lambda: None

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            self.asked.append("probe")
            return httpx.Response(200 if self.back else 503)
        if not self.asked:
            self.asked.append("stale")
            self.stale_sent.set()
            assert self._stale_fails.wait(SAFETY_NET_SECONDS), "the stale call was never let fail"
            raise httpx.ReadTimeout("the target was down when this call was sent", request=request)
        self.asked.append("call")
        self.during_call()
        return httpx.Response(200, json={}) if self.back else httpx.Response(503)

    def start_stale_call(self, service: RemoteService, pool: ThreadPoolExecutor) -> None:
        """A call, admitted while the breaker is closed, that hangs in the target."""

        def stale() -> None:
            try:
                get(service)
            except DependencyUnavailable as error:
                self.stale_outcome = error
            finally:
                self._stale_done.set()

        pool.submit(stale)
        assert self.stale_sent.wait(SAFETY_NET_SECONDS), "the stale call was not sent"

    def fail_the_stale_call(self) -> None:
        """Let the stale call fail, and return once its caller has its error (and the breaker
        has been told)."""
        self._stale_fails.set()
        assert self._stale_done.wait(SAFETY_NET_SECONDS), "the stale call did not end"


def test_a_stale_call_failing_during_the_probed_trial_neither_reopens_the_breaker_nor_discredits_the_probe(
    make_service: MakeService,
) -> None:
    """A call sent while the target was down fails only after a probe found it ready again and
    half-opened the breaker: the trial's success closes the breaker, and the stale call's
    failure is its caller's alone (it would otherwise re-open the breaker, and recovery would
    wait for the reset timeout)."""
    clock = FakeClock()
    target = StaleCallTarget()
    service = make_service(
        "http://product.test",
        breakers=BreakerRegistry(clock),
        transport=httpx.MockTransport(target.answer),
        attempts=1,
        breaker_failures=2,
        breaker_reset_seconds=10,
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        target.start_stale_call(service, pool)
        fail(service, 2)  # the breaker opens while the stale call hangs
        assert service.breaker.state == "open"
        target.back = True
        clock.advance(0.6)
        target.during_call = target.fail_the_stale_call  # while the probed trial is in flight
        assert get(service).status_code == 200
        target.during_call = lambda: None

    assert isinstance(target.stale_outcome, DependencyUnavailable)
    assert service.breaker.state == "closed"
    assert get(service).status_code == 200  # not "circuit open" until the reset timeout
    assert target.asked == ["stale", "call", "call", "probe", "call", "call"]


def test_a_stale_call_failing_after_the_breaker_closed_does_not_count_against_it(make_service: MakeService) -> None:
    """With two failures to open it, the stale failure and one fresh failure after recovery
    leave the breaker closed: only failures of calls made to the target as it is now count."""
    clock = FakeClock()
    target = StaleCallTarget()
    service = make_service(
        "http://product.test",
        breakers=BreakerRegistry(clock),
        transport=httpx.MockTransport(target.answer),
        attempts=1,
        breaker_failures=2,
        breaker_reset_seconds=10,
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        target.start_stale_call(service, pool)
        fail(service, 2)
        target.back = True
        clock.advance(0.6)
        assert get(service).status_code == 200  # probed, the trial closes the breaker
        assert service.breaker.state == "closed"
        target.fail_the_stale_call()
    target.back = False
    fail(service, 1)  # one fresh failure

    assert isinstance(target.stale_outcome, DependencyUnavailable)
    assert service.breaker.state == "closed"
    assert target.asked == ["stale", "call", "call", "probe", "call", "call"]


def test_a_trial_failing_after_another_trial_closed_the_breaker_still_counts_against_it() -> None:
    """Closing starts no generation: two calls let through while half-open were both made to the
    target as it is now, so when one closes the breaker and the other then fails, that failure
    counts, and one more opens it (with two failures to open)."""
    clock = FakeClock()
    breaker = TargetBreaker("product.test", failures=2, reset_seconds=10, clock=clock)
    for _ in range(2):
        breaker.record_failure(breaker.admit(1.0))
    assert breaker.state == "open"
    clock.advance(10.1)
    first_trial, second_trial = breaker.admit(1.0), breaker.admit(1.0)
    assert breaker.state == "half-open"

    breaker.record_success(first_trial)
    assert breaker.state == "closed"
    breaker.record_failure(second_trial)
    assert breaker.state == "closed"
    breaker.record_failure(breaker.admit(1.0))

    assert breaker.state == "open"


# --- https to a target whose certificate an internal CA signed ---------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> None:
    """``<name>.pem`` and ``<name>.key``: a certificate authority of a day."""
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip


@pytest.fixture(scope="module")
def internal_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``ca.pem`` (an internal CA), ``server.pem``/``server.key`` (127.0.0.1's
    certificate, signed by it) and ``other-ca.pem`` (a CA that signed nothing here), made with
    the openssl command (no Python package for it is installed)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test CA")
    folder = tmp_path_factory.mktemp("internal-ca")
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=folder,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "server.ext",
        cwd=folder,
    )  # fmt: skip
    return folder


def test_an_https_target_is_trusted_when_its_ca_is_the_remote_ca_file(
    make_service: MakeService, internal_ca: Path
) -> None:
    """REMOTE_CA_FILE's certificate authorities, and only those, vouch for https targets."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(internal_ca / "server.pem", internal_ca / "server.key")
    trusting = read_settings({"remote_ca_file": str(internal_ca / "ca.pem")}).remote_options()
    trusting_another = read_settings({"remote_ca_file": str(internal_ca / "other-ca.pem")}).remote_options()
    with ScriptedServer(then=Answer(200, {"ok": True}), tls=tls) as server:
        assert server.url.startswith("https://")
        assert get(make_service(server.url, ca_file=trusting.ca_file)).json() == {"ok": True}
        with pytest.raises(DependencyUnavailable) as refused:
            get(make_service(server.url, ca_file=trusting_another.ca_file, attempts=1))

    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.reason
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("missing.pem", "does not exist"),
        (".", "is not a file"),
        ("server.ext", "holds no PEM certificate"),
    ],
)
def test_a_remote_ca_file_that_cannot_serve_is_refused_at_start_up(internal_ca: Path, name: str, says: str) -> None:
    path = internal_ca / name
    with pytest.raises(ValidationError) as raised:
        read_settings({"remote_ca_file": str(path)})

    problems = settings_problems(raised.value)
    assert problems.strip().startswith(f"REMOTE_CA_FILE: {path}"), problems
    assert says in problems


def test_a_remote_ca_file_behind_a_folder_that_cannot_be_searched_is_refused_at_start_up(
    internal_ca: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a non-root process finds a file in a root-only folder: Path.exists raises (the tests
    run as root, which any folder lets through, so the refusal is played by Path itself)."""

    def unsearchable(self: Path, **_: object) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "exists", unsearchable)
    path = internal_ca / "ca.pem"
    with pytest.raises(ValidationError) as raised:
        read_settings({"remote_ca_file": str(path)})

    problems = settings_problems(raised.value)
    assert problems.strip().startswith(f"REMOTE_CA_FILE: {path} cannot be read (Permission denied)"), problems
