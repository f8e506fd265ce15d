"""A request reaching databases that were never migrated is a 503 that tells the operator to run
``shop db upgrade`` (the classifier the CLI uses), not "a database is unavailable" (SQLite's
"no such table" is an OperationalError), nor a 500 (PostgreSQL's undefined table is not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError

from app.factory import create_app
from tests.conftest import Backend, settings_for, stop_app
from tests.problems import assert_problem


@pytest.fixture
def unmigrated(tmp_path: Path, backend: Backend) -> Iterator[Flask]:
    app = create_app(settings_for(tmp_path / "unmigrated"))
    yield app
    stop_app(app)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/products", None),
        ("POST", "/api/v1/users", {"email": "ada@example.com", "password": "correct horse", "name": "Ada"}),
        ("POST", "/api/v1/auth/token", {"email": "ada@example.com", "password": "correct horse"}),
    ],
)
def test_a_request_to_unmigrated_databases_is_a_503_that_says_to_upgrade(
    unmigrated: Flask, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = unmigrated.test_client().open(path, method=method, json=body)

    problem = assert_problem(response, 503)
    assert problem["detail"] == (
        "the databases are not set up (a table is missing): an operator must run `shop db upgrade`"
    )
    assert response.headers["Retry-After"] == "60"
    assert "no such table" not in response.get_data(as_text=True)  # the driver's words stay in the log


def test_a_lost_database_is_still_said_to_be_unavailable(unmigrated: Flask) -> None:
    """The other branch of the same handler, unchanged: an OperationalError that is no missing table."""

    @unmigrated.get("/test-only/lost")
    def lost() -> str:
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection unexpectedly"))

    problem = assert_problem(unmigrated.test_client().get("/test-only/lost"), 503)
    assert problem["detail"] == "a database is unavailable; try again shortly"
