"""Operational endpoints at the root: liveness and readiness."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import structlog
from flask import Blueprint, current_app
from pydantic import BaseModel
from sqlalchemy.pool import Pool

from infrastructure.auth import TokenKeys
from infrastructure.db import Database
from infrastructure.errors import DependencyMisconfigured, DependencyUnavailable
from infrastructure.http.auth import current_tokens
from infrastructure.http.openapi import endpoint
from infrastructure.http.problems import Problem

bp = Blueprint("ops", __name__)
DATABASES = "shop.databases"
SERVICES = "shop.remote_services"
TAG = "operations"
logger = structlog.get_logger(__name__)


class HealthOut(BaseModel):
    status: Literal["ok"]


class AccessCheck(Protocol):
    """A client of another service that can tell whether that service takes this one's calls
    and its customers' tokens."""

    def check_access(self, tokens: TokenKeys) -> None: ...


class ReadinessOut(BaseModel):
    status: Literal["ok"]
    databases: dict[str, Literal["ok", "unavailable"]]


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
        " A service that does not answer does not make this one unready: it answers 503 for the calls"
        " that need it, and is ready for the others."
    ),
)
def readyz() -> dict[str, Any]:
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
    down = sorted(name for name, state in checks.items() if state != "ok")
    services, misconfigured = _check_services(current_app.extensions.get(SERVICES, {}))
    if down or misconfigured:
        reasons = [f"unavailable: {', '.join(down)}"] if down else []
        reasons += [f"the {name} service cannot be used: {problem}" for name, problem in misconfigured.items()]
        raise Problem(
            503,
            "; ".join(reasons),
            headers={"Retry-After": "5"},
            extensions={"databases": checks, "services": services},
        )
    return ReadinessOut(status="ok", databases=checks).model_dump()


def _check_services(
    clients: dict[str, AccessCheck],
) -> tuple[dict[str, Literal["ok", "unavailable", "misconfigured"]], dict[str, str]]:
    """Each service this process calls, by name: whether it takes our calls; and what is
    wrong with those that refuse them."""
    states: dict[str, Literal["ok", "unavailable", "misconfigured"]] = {}
    problems: dict[str, str] = {}
    ours = current_tokens().keys()
    for name, client in clients.items():
        try:
            client.check_access(ours)
            states[name] = "ok"
        except DependencyMisconfigured as error:
            logger.error("readyz.service_misconfigured", service=name, problem=error.problem)
            states[name], problems[name] = "misconfigured", error.problem
        except DependencyUnavailable as error:
            logger.warning("readyz.service_unavailable", service=name, reason=error.reason)
            states[name] = "unavailable"
    return states, problems
