"""Operational endpoints at the root: liveness and readiness."""

from __future__ import annotations

from typing import Any

import structlog
from flask import Blueprint, current_app

from infrastructure.db import Database

bp = Blueprint("ops", __name__)
DATABASES = "shop.databases"
logger = structlog.get_logger(__name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    databases: dict[str, Database] = current_app.extensions[DATABASES]
    checks: dict[str, str] = {}
    for name, database in databases.items():
        try:
            database.ping()
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - any failure means not ready; it is reported
            logger.warning("readyz.database_unavailable", database=name, error=str(error))
            checks[name] = "unavailable"
    ready = all(state == "ok" for state in checks.values())
    return {"status": "ok" if ready else "unavailable", "databases": checks}, 200 if ready else 503
