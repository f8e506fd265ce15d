"""Operational endpoints at the root: liveness and readiness."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from flask import Blueprint, current_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel
from sqlalchemy.pool import Pool

from infrastructure.auth.bearer import current_tokens
from infrastructure.auth.tokens import TokenKeys
from infrastructure.db.database import Database
from infrastructure.errors import DependencyMisconfigured, DependencyUnavailable, UnexpectedAnswer
from infrastructure.http.openapi import endpoint
from infrastructure.http.problems import Problem

bp = Blueprint("ops", __name__)
DATABASES = "shop.databases"
SERVICES = "shop.remote_services"
BROKER = "shop.broker"
TAG = "operations"
# How long readiness keeps a service's answer: probes come every few seconds, from every process.
SERVICE_CHECK_KEEP_SECONDS = 5.0
logger = structlog.get_logger(__name__)


class HealthOut(BaseModel):
    status: Literal["ok"]


class AccessCheck(Protocol):
    """A client of another service that can tell whether that service takes this one's calls
    and its customers' tokens."""

    def check_access(self, tokens: TokenKeys) -> None: ...


# A service's state, and what is wrong when it is misconfigured.
ServiceState = tuple[Literal["ok", "unavailable", "misconfigured"], str | None]


class ReadinessOut(BaseModel):
    status: Literal["ok"]
    databases: dict[str, Literal["ok", "unavailable"]]
    # The services this process calls, and the broker when it relays or consumes events: an
    # outage of either is reported, not a reason to be unready (a restart would not end it).
    services: dict[str, Literal["ok", "unavailable", "misconfigured"]]
    broker: Literal["ok", "unavailable"] | None = None


@bp.get("/healthz")
@endpoint(summary="Liveness: the process is up", tag=TAG, responses={200: HealthOut})
def healthz() -> dict[str, Any]:
    return HealthOut(status="ok").model_dump()


@bp.get("/readyz")
@endpoint(
    summary="Readiness: every database this process uses answers",
    tag=TAG,
    responses={200: ReadinessOut},
    description=(
        "A 503 problem names each database that did not answer, in its `databases` member, and each"
        " service this one calls that refuses its calls (a misconfiguration), in its `services` member."
        " A service that does not answer, or fails, does not make this one unready: it answers 503 for"
        " the calls that need it, and is ready for the others; nor does the broker (`broker`, where this"
        " process relays or consumes events: as its relay and consumer last found it), whose events wait"
        " in the outbox or the queues meanwhile. Each service's answer is kept for 5 seconds."
    ),
)
def readyz() -> dict[str, Any]:
    state = readiness()
    if not state.ready:
        down = sorted(name for name, answer in state.databases.items() if answer != "ok")
        reasons = [f"unavailable: {', '.join(down)}"] if down else []
        reasons += [f"the {name} service cannot be used: {problem}" for name, problem in state.misconfigured.items()]
        raise Problem(
            503,
            "; ".join(reasons),
            headers={"Retry-After": "5"},
            extensions={"databases": state.databases, "services": state.services}
            | ({"broker": state.broker} if state.broker else {}),
        )
    return ReadinessOut(
        status="ok", databases=state.databases, services=state.services, broker=state.broker
    ).model_dump(exclude_none=True)


@dataclass(frozen=True)
class Readiness:
    databases: dict[str, Literal["ok", "unavailable"]]
    services: dict[str, Literal["ok", "unavailable", "misconfigured"]]
    # What is wrong with each service that refuses this one's calls.
    misconfigured: dict[str, str]
    # None: this process uses no broker.
    broker: Literal["ok", "unavailable"] | None = None

    @property
    def ready(self) -> bool:
        return all(answer == "ok" for answer in self.databases.values()) and not self.misconfigured


def readiness() -> Readiness:
    """What ``/readyz`` answers and ``/metrics`` reports (``shop_ready``), in the app's context."""
    databases: dict[str, Database] = current_app.extensions[DATABASES]
    # Contexts on one server share its pool: one ping answers for all of them.
    answers: dict[Pool, Literal["ok", "unavailable"]] = {}
    checks: dict[str, Literal["ok", "unavailable"]] = {}
    for name, database in databases.items():
        pool = database.engine.pool
        if pool not in answers:
            try:
                database.ping()
                answers[pool] = "ok"
            except Exception as error:  # noqa: BLE001 - any failure means not ready; it is reported
                logger.warning("readyz.database_unavailable", database=name, error=str(error))
                answers[pool] = "unavailable"
        checks[name] = answers[pool]
    services, misconfigured = _check_services(current_app.extensions.get(SERVICES, {}))
    broker: Callable[[], Literal["ok", "unavailable"] | None] = current_app.extensions[BROKER]
    return Readiness(checks, services, misconfigured, broker())


class ReadinessGauges(Collector):
    """``shop_ready`` (1 when ``/readyz`` would answer 200) and ``shop_dependency_ready`` per
    database and called service, read at each scrape of the answering process."""

    def describe(self) -> Iterator[Metric]:
        """What :meth:`collect` yields, without asking anything (registering asks for it)."""
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        state = readiness()
        ready, dependencies = self._families()
        ready.add_metric([], 1.0 if state.ready else 0.0)
        for name, answer in state.databases.items():
            dependencies.add_metric([f"database:{name}"], 1.0 if answer == "ok" else 0.0)
        for name, service_state in state.services.items():
            dependencies.add_metric([f"service:{name}"], 1.0 if service_state == "ok" else 0.0)
        if state.broker is not None:
            dependencies.add_metric(["broker"], 1.0 if state.broker == "ok" else 0.0)
        yield ready
        yield dependencies

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        ready = GaugeMetricFamily("shop_ready", "1 when GET /readyz answers 200, else 0")
        dependencies = GaugeMetricFamily(
            "shop_dependency_ready",
            "1 when a database (database:<context>), a called service (service:<context>)"
            " or the broker (broker) answers, else 0",
            labels=["dependency"],
        )
        return ready, dependencies


def service_checks(clients: Mapping[str, AccessCheck]) -> dict[str, ServiceCheck]:
    """What readiness asks of each service this process calls, by service name."""
    return {name: ServiceCheck(name, client) for name, client in clients.items()}


class ServiceCheck:
    """Whether one service takes this one's calls, as last found out, kept ``keep_seconds``.

    An orchestrator probes every process every few seconds; without the answer kept, each
    probe would be a call to the other service. Thread-safe: probes arriving together wait
    for the one call under way instead of making their own.
    """

    def __init__(
        self,
        name: str,
        client: AccessCheck,
        *,
        keep_seconds: float = SERVICE_CHECK_KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._client = client
        self._keep_seconds = keep_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: tuple[TokenKeys, ServiceState] | None = None
        self._until = 0.0

    def state(self, ours: TokenKeys) -> ServiceState:
        """The service's state, and what is wrong when it refuses this one's calls."""
        with self._lock:
            if self._kept is not None and self._kept[0] == ours and self._clock() < self._until:
                return self._kept[1]
            state = self._ask(ours)
            self._kept, self._until = (ours, state), self._clock() + self._keep_seconds
            return state

    def _ask(self, ours: TokenKeys) -> ServiceState:
        try:
            self._client.check_access(ours)
        except DependencyMisconfigured as error:
            logger.error("readyz.service_misconfigured", service=self._name, problem=error.problem)
            return "misconfigured", error.problem
        except DependencyUnavailable as error:
            logger.warning("readyz.service_unavailable", service=self._name, reason=error.reason)
            return "unavailable", None
        except UnexpectedAnswer as error:
            # A failing service, not a refusal: like one that does not answer, no reason to stop this one.
            logger.error("readyz.service_unexpected_answer", service=self._name, error=str(error))
            return "unavailable", None
        return "ok", None


def _check_services(
    checks: Mapping[str, ServiceCheck],
) -> tuple[dict[str, Literal["ok", "unavailable", "misconfigured"]], dict[str, str]]:
    """Each service this process calls, by name: whether it takes our calls; and what is
    wrong with those that refuse them."""
    states: dict[str, Literal["ok", "unavailable", "misconfigured"]] = {}
    problems: dict[str, str] = {}
    ours = current_tokens().keys()
    for name, check in checks.items():
        states[name], problem = check.state(ours)
        if problem is not None:
            problems[name] = problem
    return states, problems
