"""PostgreSQL specifics of ``infrastructure.db.database``: driver, one schema per context, pool and timeouts.

The server tests need ``SHOP_TEST_POSTGRES_URL``; they skip without it, naming the variable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.config import Settings
from app.migrations import downgrade_all, upgrade_all, version_table
from app.registry import CONTEXTS
from infrastructure.db.database import Database, Engines, PoolOptions
from tests.conftest import postgres_url_or_skip


@pytest.fixture
def server_url() -> str:
    return postgres_url_or_skip()


@pytest.fixture
def own_database(server_url: str) -> Iterator[str]:
    """The URL of a database created for this test alone, dropped afterwards: the contexts'
    default schemas (``user``, ``order``, ...) can then be used without colliding."""
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = Database("admin", server_url, isolation_level="AUTOCOMMIT")
    with admin.engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgresql_urls_use_psycopg_3(scheme: str) -> None:
    database = Database("user", f"{scheme}://shop:secret@db.example.com:5432/shop")
    assert database.url.drivername == "postgresql+psycopg"
    assert database.engine.dialect.driver == "psycopg"
    assert "secret" not in repr(database)


def test_sqlite_has_no_schema_and_keeps_its_own_pool(tmp_path: Path) -> None:
    database = Database("order", f"sqlite:///{tmp_path / 'order.db'}", schema="ignored", pool=PoolOptions(size=1))
    assert database.schema is None
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    database.dispose()


def test_the_settings_choose_each_contexts_schema_and_the_pool(tmp_path: Path) -> None:
    settings = Settings(
        instance_path=tmp_path,
        order_database_schema="ordering",
        database_pool_size=3,
        database_max_overflow=0,
        database_pool_timeout_seconds=2.5,
        database_statement_timeout_ms=1234,
    )
    assert settings.database_schema_for("order") == "ordering"
    assert settings.database_schema_for("user") == "user"
    pool = PoolOptions(size=3, max_overflow=0, timeout_seconds=2.5, statement_timeout_ms=1234)
    assert settings.database_pool() == pool
    assert settings.database_pool().application_name == "modular-shop"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("user_database_schema", "Users"),
        ("order_database_schema", "order; DROP TABLE x"),
        ("audit_database_schema", "a" * 64),
        ("database_pool_size", 0),
        ("database_max_overflow", -1),
        ("database_pool_timeout_seconds", 0),
        ("database_statement_timeout_ms", -5),
        ("database_application_name", ""),
        ("database_application_name", "a" * 64),
        ("database_application_name", "caf\u00e9"),
    ],
)
def test_a_bad_database_setting_is_refused_by_name(tmp_path: Path, setting: str, value: object) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(instance_path=tmp_path, **{setting: value})
    assert setting in str(error.value)


def test_every_context_lives_in_its_own_schema_named_after_it(own_database: str) -> None:
    engines = Engines()
    databases = {context: Database(context, own_database, engines=engines) for context in CONTEXTS}
    try:
        upgrade_all(databases)
        # "user" and "order" are reserved words: they work because they are always quoted.
        schemas = set(inspect(databases["user"].engine).get_schema_names())
        assert set(CONTEXTS) <= schemas
        for context, database in databases.items():
            with database.begin() as connection:
                assert connection.execute(text("SELECT current_schema()")).scalar() == context
            tables = set(inspect(database.engine).get_table_names(schema=context))
            assert version_table(context) in tables
            assert all(table.startswith(f"{context}_") for table in tables)
        downgrade_all(databases)
        for context, database in databases.items():
            assert set(inspect(database.engine).get_table_names(schema=context)) == {version_table(context)}
        upgrade_all(databases)
    finally:
        for database in databases.values():
            database.dispose()


def test_a_statement_running_past_the_timeout_is_cancelled(own_database: str) -> None:
    database = Database("audit", own_database, pool=PoolOptions(statement_timeout_ms=200))
    try:
        with database.engine.connect() as connection, pytest.raises(OperationalError, match="statement timeout"):
            connection.execute(text("SELECT pg_sleep(2)"))
        # The setting belongs to the session, not to the transaction that failed.
        with database.engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "200ms"
    finally:
        database.dispose()


def test_the_pool_is_sized_by_the_options(server_url: str) -> None:
    database = Database("user", server_url, pool=PoolOptions(size=2, max_overflow=0, timeout_seconds=0.2))
    try:
        first, second = database.engine.connect(), database.engine.connect()
        with pytest.raises(PoolTimeout):
            database.engine.connect()
        first.close()
        second.close()
    finally:
        database.dispose()
