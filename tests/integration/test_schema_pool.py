"""The suite's pool of emptied PostgreSQL schemas (``tests/schema_pool.py``): a test's schemas
are reused by the next app only when they are as their migration left them, and then empty.

Needs ``SHOP_TEST_POSTGRES_URL``; skips without it, naming the variable. Each test has a pool of
its own (the process's is swapped out), so what it kept is all the pool holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.registry import CONTEXTS
from infrastructure.db.database import database_url
from tests import conftest, schema_pool
from tests.conftest import POSTGRES_URL_VARIABLE, PostgresBackend, on_backend, start_app, stop_app
from tests.schema_pool import SchemaPool

pytestmark = pytest.mark.usefixtures("own_pool")

# What a process serving only the product context needs (none of it is called here).
SERVED_APART_FROM_USER = {
    "events_broker_url": "amqp://guest:guest@127.0.0.1:5672//",
    "service_token": "s" * 40,
    "token_secret": "t" * 40,
    "user_service_url": "http://127.0.0.1:9",
}


@pytest.fixture
def url() -> str:
    value = os.environ.get(POSTGRES_URL_VARIABLE)
    if not value:
        pytest.skip(f"PostgreSQL: set {POSTGRES_URL_VARIABLE} (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    return value


@pytest.fixture
def own_pool(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    pools: dict[str, SchemaPool] = {}
    monkeypatch.setattr(conftest, "_schema_pools", pools)
    yield
    for pool in pools.values():
        pool.close()


def sql(url: str, statement: str, **parameters: object) -> list[tuple[object, ...]]:
    engine = create_engine(database_url(url))
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement), parameters)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def schema_oids(url: str, prefix: str) -> dict[str, int]:
    """Each context → the oid of ``<prefix>_<context>``, for those that exist."""
    rows = sql(url, "SELECT nspname, oid FROM pg_namespace WHERE starts_with(nspname, :start)", start=f"{prefix}_")
    return {str(name).removeprefix(f"{prefix}_"): int(str(oid)) for name, oid in rows}


def the_prefix(backend: PostgresBackend, instance: Path) -> str:
    return backend.schema("user", instance).removesuffix("_user")


def an_app_that_registered_someone(url: str, instance: Path, alter: str | None = None) -> dict[str, int]:
    """Run an app on fresh schemas, register a user (rows in the user context's tables, an event
    in its outbox), run ``alter`` on its schemas (``{prefix}`` filled in), and end as a test
    ends; the oids its schemas had."""
    backend = PostgresBackend(url)
    with on_backend(backend):
        app = start_app(instance)
        try:
            answer = app.test_client().post(
                "/api/v1/users", json={"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
            )
            assert answer.status_code == 201, answer.json
        finally:
            stop_app(app)
        prefix = the_prefix(backend, instance)
        oids = schema_oids(url, prefix)
        if alter:
            sql(url, alter.format(prefix=prefix))
    assert schema_oids(url, prefix) == {}, "the test's own schema names are gone"
    return oids


def test_the_next_app_gets_the_schemas_a_test_left_emptied_with_their_sequences_restarted(
    url: str, tmp_path: Path
) -> None:
    first = an_app_that_registered_someone(url, tmp_path / "first")
    assert set(first) == set(CONTEXTS)

    backend = PostgresBackend(url)
    with on_backend(backend):
        app = start_app(tmp_path / "second")
        try:
            prefix = the_prefix(backend, tmp_path / "second")
            assert schema_oids(url, prefix) == first, "every schema reused, none made again"
            assert sql(url, f'SELECT count(*) FROM "{prefix}_user".user_users') == [(0,)]
            assert sql(url, f'SELECT count(*) FROM "{prefix}_user".user_outbox') == [(0,)]
            assert sql(url, f'SELECT count(*) FROM "{prefix}_user".user_alembic_version') == [(1,)]
            answer = app.test_client().post(
                "/api/v1/users", json={"email": "ada@example.com", "password": "correct horse", "name": "Ada"}
            )
            assert answer.status_code == 201, "the same email again: nothing of the first test is left"
            assert sql(url, f'SELECT position FROM "{prefix}_user".user_outbox') == [(1,)], "the sequence restarted"
        finally:
            stop_app(app)


@pytest.mark.parametrize(
    "alter",
    [
        'ALTER TABLE "{prefix}_user".user_users ADD COLUMN nickname text',
        'CREATE INDEX users_by_name ON "{prefix}_user".user_users (name)',
        "UPDATE \"{prefix}_user\".user_alembic_version SET version_num = 'user_0004'",
        'DROP TABLE "{prefix}_user".user_outbox CASCADE',
    ],
    ids=["a column added", "an index added", "migrated down", "a table dropped"],
)
def test_a_schema_no_longer_as_migrated_is_dropped_and_the_others_kept(url: str, tmp_path: Path, alter: str) -> None:
    first = an_app_that_registered_someone(url, tmp_path / "first", alter=alter)

    backend = PostgresBackend(url)
    with on_backend(backend):
        app = start_app(tmp_path / "second")
        try:
            second = schema_oids(url, the_prefix(backend, tmp_path / "second"))
            assert second["user"] != first["user"], "the changed schema was made again"
            assert {context: second[context] for context in CONTEXTS if context != "user"} == {
                context: first[context] for context in CONTEXTS if context != "user"
            }
            assert not sql(url, f"SELECT oid FROM pg_namespace WHERE oid = {first['user']}"), "and dropped"
        finally:
            stop_app(app)


def test_an_app_serving_some_contexts_takes_only_theirs_and_the_pool_drops_what_it_kept_when_closed(
    url: str, tmp_path: Path
) -> None:
    first = an_app_that_registered_someone(url, tmp_path / "first")

    backend = PostgresBackend(url)
    with on_backend(backend):
        app = start_app(tmp_path / "second", served_contexts="product", **SERVED_APART_FROM_USER)
        try:
            second = schema_oids(url, the_prefix(backend, tmp_path / "second"))
            assert second == {"product": first["product"]}, "no schema of a context the app does not serve"
        finally:
            stop_app(app)

    conftest._schema_pool(url).close()
    kept = sql(url, f"SELECT oid FROM pg_namespace WHERE oid IN ({','.join(str(oid) for oid in first.values())})")
    assert kept == []


def test_a_schema_that_served_its_share_of_tests_is_dropped_and_made_anew(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted rows stay in a table until a VACUUM, which a server without autovacuum never runs."""
    monkeypatch.setattr(schema_pool, "MAX_TESTS_SERVED", 2)
    first = an_app_that_registered_someone(url, tmp_path / "first")
    second = an_app_that_registered_someone(url, tmp_path / "second")
    third = an_app_that_registered_someone(url, tmp_path / "third")

    assert second == first, "a schema that served one test serves another"
    assert not set(third.values()) & set(first.values()), "after two, each is made anew"
    assert not sql(url, f"SELECT oid FROM pg_namespace WHERE oid IN ({','.join(str(oid) for oid in first.values())})")
