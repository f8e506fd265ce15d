"""Operational endpoints at the root: liveness and readiness."""

from __future__ import annotations

from typing import Any, Literal

import structlog
from flask import Blueprint, current_app
from pydantic import BaseModel
from sqlalchemy.pool import Pool

from infrastructure.db import Database
from infrastructure.http.openapi import endpoint
from infrastructure.http.problems import Problem

bp = Blueprint("ops", __name__)
DATABASES = "shop.databases"
TAG = "operations"
logger = structlog.get_logger(__name__)


class HealthOut(BaseModel):
    status: Literal["ok"]


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
    description="A 503 problem names each database that did not answer, in its `databases` member.",
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
    if down:
        raise Problem(
            503,
            f"unavailable: {', '.join(down)}",
            headers={"Retry-After": "5"},
            extensions={"databases": checks},
        )
    return ReadinessOut(status="ok", databases=checks).model_dump()
