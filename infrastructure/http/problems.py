"""RFC 9457 problem details for every error the API returns.

Views raise :class:`Problem` (or a context's typed error mapped by :func:`map_errors`); the
handlers installed here turn Werkzeug's HTTP errors, lost databases, unavailable services and
genuine bugs into the same shape. A bug's body never carries a stack trace or SQL; the log line does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from flask import Blueprint, Flask, Response, request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from infrastructure.db.failures import missing_table
from infrastructure.errors import Busy, DependencyMisconfigured, DependencyUnavailable
from infrastructure.http.schemas import FieldError, ProblemDetails

PROBLEM_JSON = "application/problem+json"
# Migrating takes an operator: retrying in seconds would not help.
NOT_MIGRATED_RETRY_AFTER_SECONDS = 60

logger = structlog.get_logger(__name__)


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.type = type_
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})

    def to_response(self) -> Response:
        body = ProblemDetails(
            type=self.type,
            title=self.title,
            status=self.status,
            detail=self.detail or self.title,
            instance=request.path,
            errors=[FieldError(field=e["field"], message=e["message"]) for e in self.errors]
            if self.errors is not None
            else None,
            **self.extensions,
        )
        response = Response(body.model_dump_json(exclude_none=True), status=self.status, mimetype=PROBLEM_JSON)
        response.headers.update(self.headers)
        return response


def map_errors(blueprint: Blueprint, statuses: Mapping[type[Exception], int]) -> None:
    """Answer a context's typed errors with problem details; the error's message is the detail."""

    def to_problem(error: Exception) -> Response:
        status = next(statuses[cls] for cls in type(error).__mro__ if cls in statuses)
        return Problem(status, str(error)).to_response()

    for error_type in statuses:
        blueprint.register_error_handler(error_type, to_problem)


def _from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    detail = error.description if status != 413 else "the request body is larger than allowed"
    headers = {}
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return Problem(status, detail, headers=headers).to_response()


def _from_database_error(error: DBAPIError) -> Response:
    """A lost database is a 503 the client may retry. A missing table (SQLite's "no such table",
    PostgreSQL's undefined table, whatever SQLAlchemy class wraps it) is a 503 too, but one that
    says the databases were never migrated, so the operator reading it runs ``shop db upgrade``
    instead of looking for an outage. Any other database error is a bug."""
    reason = str(error.orig) if error.orig else str(error)
    if missing_table(error):
        logger.error("database.not_migrated", error=reason)
        return Problem(
            503,
            "the databases are not set up (a table is missing): an operator must run `shop db upgrade`",
            headers={"Retry-After": str(NOT_MIGRATED_RETRY_AFTER_SECONDS)},
        ).to_response()
    if isinstance(error, OperationalError):
        logger.error("database.unavailable", error=reason)
        return Problem(503, "a database is unavailable; try again shortly", headers={"Retry-After": "5"}).to_response()
    return _from_bug(error)


def _busy(retry_after_seconds: int) -> Response:
    return Problem(
        503, "the service is busy; try again shortly", headers={"Retry-After": str(retry_after_seconds)}
    ).to_response()


def _from_exhausted_pool(error: PoolTimeout) -> Response:
    """Every pooled connection stayed busy for DATABASE_POOL_TIMEOUT_SECONDS: the database is
    there but this process is saturated, so the client may well succeed a moment later."""
    logger.warning("database.pool_exhausted", error=str(error))
    return _busy(2)


def _from_busy(error: Busy) -> Response:
    logger.warning("service.busy", resource=error.resource, retry_after=error.retry_after_seconds)
    return _busy(error.retry_after_seconds)


def _from_unavailable_dependency(error: DependencyUnavailable) -> Response:
    """Another service did not answer: the client may try again; the detail names the service,
    never its address. One that refuses this service is a misconfiguration the detail names,
    so that whoever sees the answer knows it is no outage to wait out."""
    if isinstance(error, DependencyMisconfigured):
        logger.error("dependency.misconfigured", service=error.service, problem=error.problem)
        return Problem(
            503,
            f"the {error.service} service cannot be used: {error.problem}",
            headers={"Retry-After": str(error.retry_after_seconds)},
        ).to_response()
    logger.warning(
        "dependency.unavailable", service=error.service, reason=error.reason, retry_after=error.retry_after_seconds
    )
    return Problem(
        503,
        f"the {error.service} service is unavailable; try again shortly",
        headers={"Retry-After": str(error.retry_after_seconds)},
    ).to_response()


def _from_bug(error: Exception) -> Response:
    logger.exception("request.failed", error_type=type(error).__name__)
    return Problem(500, "an unexpected error occurred; it has been logged").to_response()


def install_problem_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, lambda problem: problem.to_response())
    app.register_error_handler(HTTPException, _from_http_exception)
    app.register_error_handler(DBAPIError, _from_database_error)
    app.register_error_handler(PoolTimeout, _from_exhausted_pool)
    app.register_error_handler(Busy, _from_busy)
    app.register_error_handler(DependencyUnavailable, _from_unavailable_dependency)
    app.register_error_handler(Exception, _from_bug)
