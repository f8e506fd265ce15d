"""The suite's pool of emptied PostgreSQL schemas (``tests/schema_pool.py``): a test's schemas
are reused by the next app only when they are as their migration left them, and then empty.

Needs ``SHOP_TEST_POSTGRES_URL``; skips without it, naming the variable. Each test has a pool of
its own (the process's is swapped out), so what it kept is all the pool holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app.containers import databases
from app.factory import container_of
from app.migrations import upgrade_all
from app.registry import CONTEXTS
from infrastructure.db.database import database_url
from tests import conftest, schema_pool
from tests.conftest import PostgresBackend, on_backend, postgres_url_or_skip, start_app, stop_app
from tests.integration.test_migrations import _schema_of
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
    return postgres_url_or_skip()


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


def rows_by_table(url: str, prefix: str) -> dict[str, int]:
    """Each table of the schemas ``<prefix>_*`` but the Alembic versions → its rows."""
    tables = sql(
        url,
        "SELECT schemaname, tablename FROM pg_tables WHERE starts_with(schemaname, :start)"
        " AND tablename NOT LIKE '%alembic_version'",
        start=f"{prefix}_",
    )
    return {
        f"{schema}.{table}": int(str(sql(url, f'SELECT count(*) FROM "{schema}"."{table}"')[0][0]))
        for schema, table in tables
    }


def the_prefix(backend: PostgresBackend, instance: Path) -> str:
    return backend.schema("user", instance).removesuffix("_user")


def existing(url: str, oids: Iterable[int]) -> list[tuple[object, ...]]:
    """Those of the schemas ``oids`` that are still on the server."""
    return sql(url, f"SELECT oid FROM pg_namespace WHERE oid IN ({','.join(str(oid) for oid in oids)})")


def schemas_of_a_new_app(url: str, instance: Path, *, pooled: bool = True, **settings: Any) -> dict[str, int]:
    """The oids of the schemas an app started on ``instance`` (with ``settings``) gets, each
    context's; the app stopped and its schemas given back, as a test's end does."""
    backend = PostgresBackend(url, pooled=pooled)
    with on_backend(backend):
        app = start_app(instance, **settings)
        try:
            return schema_oids(url, the_prefix(backend, instance))
        finally:
            stop_app(app)


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
        written = {table for table, rows in rows_by_table(url, prefix).items() if rows}
        assert {f"{prefix}_user.user_users", f"{prefix}_user.user_outbox", f"{prefix}_user.user_deliveries"} <= written
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
            left = {table: rows for table, rows in rows_by_table(url, prefix).items() if rows}
            assert left == {}, "every table of every schema emptied"
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
        'ALTER TABLE "{prefix}_user".user_users ALTER COLUMN name TYPE varchar(100) COLLATE "C"',
        'ALTER SEQUENCE "{prefix}_user".user_outbox_position_seq INCREMENT BY 2',
        # The function in a schema of its own (the backend drops ``<prefix>_shared``): only the
        # trigger is new in the user context's schema.
        'CREATE SCHEMA "{prefix}_shared";'
        ' CREATE FUNCTION "{prefix}_shared".refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;'
        ' CREATE TRIGGER refuse BEFORE INSERT ON "{prefix}_user".user_users FOR EACH ROW'
        ' EXECUTE FUNCTION "{prefix}_shared".refuse()',
    ],
    ids=[
        "a column added",
        "an index added",
        "migrated down",
        "a table dropped",
        "a collation changed",
        "a sequence changed",
        "a trigger added",
    ],
)
def test_a_schema_no_longer_as_migrated_is_dropped_and_the_others_kept(url: str, tmp_path: Path, alter: str) -> None:
    first = an_app_that_registered_someone(url, tmp_path / "first", alter=alter)

    second = schemas_of_a_new_app(url, tmp_path / "second")

    assert second["user"] != first["user"], "the changed schema was made again"
    assert {context: second[context] for context in CONTEXTS if context != "user"} == {
        context: first[context] for context in CONTEXTS if context != "user"
    }
    assert not existing(url, [first["user"]]), "and dropped"


def test_an_app_serving_some_contexts_takes_only_theirs_and_the_pool_drops_what_it_kept_when_closed(
    url: str, tmp_path: Path
) -> None:
    first = an_app_that_registered_someone(url, tmp_path / "first")

    second = schemas_of_a_new_app(url, tmp_path / "second", served_contexts="product", **SERVED_APART_FROM_USER)
    assert second == {"product": first["product"]}, "no schema of a context the app does not serve"

    conftest._schema_pool(url).close()
    assert existing(url, first.values()) == []


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
    assert not existing(url, first.values())


def test_a_transaction_the_test_left_open_keeps_its_schemas_out_of_the_pool(url: str, tmp_path: Path) -> None:
    """Emptying takes every table first: a reader still in a transaction (or a writer yet to
    commit) would otherwise carry its locks, or its rows, into the next test. The schemas are
    dropped instead, once the straggler is gone, as they were before there was a pool."""
    backend = PostgresBackend(url)
    straggler = create_engine(database_url(url))
    try:
        with on_backend(backend):
            app = start_app(tmp_path / "first")
            stop_app(app)
            prefix = the_prefix(backend, tmp_path / "first")
            first = schema_oids(url, prefix)
            reader = straggler.connect()
            reader.exec_driver_sql(f'SELECT count(*) FROM "{prefix}_order".order_orders').all()
            # Gone after the pool's 2 s wait for the tables and before the drop's 10 s.
            threading.Timer(4.0, reader.close).start()
        assert not schema_oids(url, prefix)
    finally:
        straggler.dispose()

    second = schemas_of_a_new_app(url, tmp_path / "second")
    assert not set(second.values()) & set(first.values()), "none was kept"


def test_a_backend_not_pooled_makes_new_schemas_while_the_pool_holds_some(url: str, tmp_path: Path) -> None:
    """What ``@pytest.mark.fresh_schemas`` asks for: the tests that read query plans."""
    first = an_app_that_registered_someone(url, tmp_path / "first")

    second = schemas_of_a_new_app(url, tmp_path / "second", pooled=False)

    assert set(second) == set(CONTEXTS)
    assert not set(second.values()) & set(first.values())


def test_a_schema_from_the_pool_is_what_alembic_builds(url: str, tmp_path: Path) -> None:
    an_app_that_registered_someone(url, tmp_path / "first")
    alembic = PostgresBackend(url)
    built_by_alembic = {context: alembic.database(context, tmp_path / "alembic") for context in CONTEXTS}

    backend = PostgresBackend(url)
    with on_backend(backend):
        upgrade_all(built_by_alembic)
        app = start_app(tmp_path / "second")
        try:
            for context, database in databases(container_of(app)).items():
                assert _schema_of(database) == _schema_of(built_by_alembic[context]), context
        finally:
            stop_app(app)
            for database in built_by_alembic.values():
                database.dispose()
            alembic.cleanup()
