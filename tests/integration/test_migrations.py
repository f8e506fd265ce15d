"""Each context's migration history builds exactly the tables its models describe, and reverts.

The product catalog's search index is built by its migrations outside the metadata (an FTS5
table and triggers on SQLite, trigram indexes on PostgreSQL): the comparison leaves exactly those
objects out, by the same hook the context's Alembic environment uses, and other tests check
that the index is there and used (tests/contexts/product/integration/test_search.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text
from structlog.testing import capture_logs

from app.containers import databases as databases_of
from app.factory import container_of
from app.migrations import downgrade_all, script_location, upgrade_all, version_table
from app.registry import CONTEXTS
from contexts.audit.adapters.orm import AuditBase
from contexts.notification.adapters.orm import NotificationBase
from contexts.order.adapters.orm import OrderBase
from contexts.product.adapters import search
from contexts.product.adapters.orm import ProductBase
from contexts.recommendation.adapters.orm import RecommendationBase
from contexts.user.adapters.orm import UserBase
from contexts.user.adapters.repository import SqlAlchemyUserRepository
from contexts.user.domain.model import email_key
from infrastructure.db import migrations
from infrastructure.db.database import Database
from tests import conftest
from tests.conftest import Backend, start_app, stop_app
from tests.schema_pool import SchemaPool

METADATA: dict[str, MetaData] = {
    "user": UserBase.metadata,
    "product": ProductBase.metadata,
    "order": OrderBase.metadata,
    "notification": NotificationBase.metadata,
    "audit": AuditBase.metadata,
    "recommendation": RecommendationBase.metadata,
}
# Objects a context's migrations build outside its metadata, left out of comparisons.
INCLUDE_NAME = {"product": search.modelled}


def modelled_tables(context: str, tables: set[str]) -> set[str]:
    include = INCLUDE_NAME.get(context)
    return {table for table in tables if include is None or include(table, "table", {})}


@pytest.fixture
def databases(tmp_path: Path, backend: Backend) -> Iterator[dict[str, Database]]:
    databases = {context: backend.database(context, tmp_path) for context in CONTEXTS}
    yield databases
    for database in databases.values():
        database.dispose()


# SQLite does not reflect an index on an expression (product skus, lower(sku)); PostgreSQL does,
# and compares it here. tests/contexts/product/integration/test_http.py shows the index at work on both.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index:UserWarning")
@pytest.mark.parametrize("context", CONTEXTS)
def test_migrations_match_the_models(databases: dict[str, Database], context: str) -> None:
    upgrade_all(databases)
    # Reflection looks where the search path points: in the context's schema on PostgreSQL.
    with databases[context].begin() as connection:
        migration_context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "version_table": version_table(context),
                "include_name": INCLUDE_NAME.get(context),
            },
        )
        assert compare_metadata(migration_context, METADATA[context]) == []


def test_each_context_owns_only_its_own_prefixed_tables(databases: dict[str, Database]) -> None:
    upgrade_all(databases)
    for context, database in databases.items():
        tables = set(inspect(database.engine).get_table_names(schema=database.schema))
        assert modelled_tables(context, tables) == set(METADATA[context].tables) | {version_table(context)}
        assert all(table.startswith(f"{context}_") for table in tables)


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(
    databases: dict[str, Database],
) -> None:
    upgrade_all(databases)
    downgrade_all(databases)
    for context, database in databases.items():
        assert set(inspect(database.engine).get_table_names(schema=database.schema)) == {version_table(context)}
    upgrade_all(databases)
    for context, database in databases.items():
        assert set(METADATA[context].tables) <= set(inspect(database.engine).get_table_names(schema=database.schema))


def test_the_suites_quick_migration_builds_what_alembic_builds(
    databases: dict[str, Database], tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``start_app`` copies migrated SQLite files and replays recorded PostgreSQL migrations
    (tests/conftest.py) instead of running Alembic per app: the suite tests what Alembic
    builds only if the two build the same thing, down to triggers, partial indexes and versions.
    An empty schema pool of the test's own, so that the apps' schemas are replayed, not taken
    from the pool (``integration/test_schema_pool.py`` compares those)."""
    own_pools: dict[str, SchemaPool] = {}
    monkeypatch.setattr(conftest, "_schema_pools", own_pools)
    upgrade_all(databases)
    # The first app may be the one its migration is recorded from; the second is a copy.
    apps = [start_app(tmp_path / name) for name in ("first", "second")]
    try:
        for context, database in databases.items():
            built_by_alembic = _schema_of(database)
            assert built_by_alembic, context
            for app in apps:
                assert _schema_of(databases_of(container_of(app))[context]) == built_by_alembic, context
    finally:
        for app in apps:
            stop_app(app)
        for pool in own_pools.values():
            pool.close()


def _schema_of(database: Database) -> list[tuple[str, ...]]:
    """Everything a migration builds in ``database``, as text, its schema's name left out."""
    with database.engine.connect() as connection:
        if database.schema is None:
            rows = connection.execute(text("SELECT type, name, tbl_name, sql FROM sqlite_master"))
            versions = connection.exec_driver_sql(f"SELECT version_num FROM {version_table(database.name)}")
        else:
            rows = connection.execute(_POSTGRES_SCHEMA, {"schema": database.schema})
            versions = connection.exec_driver_sql(
                f'SELECT version_num FROM "{database.schema}".{version_table(database.name)}'
            )
        described = [tuple(str(value) for value in row) for row in [*rows, *versions]]
    schema = database.schema or "main"
    return sorted(tuple(value.replace(schema, "<schema>") for value in row) for row in described)


# Columns, constraints and indexes (with their definitions, partial ones included) of a schema.
_POSTGRES_SCHEMA = text(
    """
    SELECT 'column', table_name, column_name, data_type, is_nullable, coalesce(column_default, ''),
           coalesce(collation_name, '')
    FROM information_schema.columns WHERE table_schema = :schema
    UNION ALL
    SELECT 'constraint', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), '', '', ''
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = :schema
    UNION ALL
    SELECT 'index', tablename, indexname, indexdef, '', '', '' FROM pg_indexes WHERE schemaname = :schema
    UNION ALL
    SELECT 'trigger', event_object_table, trigger_name, action_statement, event_manipulation, '', ''
    FROM information_schema.triggers WHERE trigger_schema = :schema
    """
)


def test_all_contexts_can_share_one_database(tmp_path: Path, backend: Backend) -> None:
    shared = backend.database("shared", tmp_path)
    upgrade_all({context: shared for context in CONTEXTS})
    tables = set(inspect(shared.engine).get_table_names(schema=shared.schema))
    shared.dispose()
    for context in CONTEXTS:
        assert set(METADATA[context].tables) | {version_table(context)} <= tables


def test_email_keys_made_before_nfkc_are_recomputed_and_a_lookalike_leaves_the_original_its_key(
    databases: dict[str, Database],
) -> None:
    """Before user_0004 keys were the case-folded address: the owner of ``ada@bücher.de`` could
    not log in any more once logins fold the domain to ASCII."""
    user = databases["user"]
    migrations.upgrade(user, script_location("user"), version_table("user"), "user_0003")
    legacy = [  # (email, created) — keys as the old rule made them
        ("Admin@example.com", "2026-01-01"),
        ("ａdmin@example.com", "2026-01-02"),  # a lookalike, registered after the original
        ("ada@bücher.de", "2026-01-03"),
        ("zoe@example.com", "2026-01-04"),
        ("bea@straße.de", "2026-01-05"),  # IDNA 2008 keeps ß: xn--strae-oqa.de, not strasse.de
        ("cy@σς.example", "2026-01-06"),  # … and the final sigma
    ]
    with user.begin(write=True) as connection:
        for n, (email, created) in enumerate(legacy):
            connection.execute(
                text(
                    "INSERT INTO user_users (id, email, email_key, name, role, password_hash, created_at)"
                    " VALUES (:id, :email, :key, 'N', 'customer', 'x', :created)"
                ),
                {"id": str(uuid.UUID(int=n + 1)), "email": email, "key": email.casefold(), "created": created},
            )

    with capture_logs() as logs:
        migrations.upgrade(user, script_location("user"), version_table("user"), "head")

    with user.begin() as connection:
        keys = dict(connection.execute(text("SELECT email, email_key FROM user_users")).all())
    assert keys == {
        "Admin@example.com": "admin@example.com",
        "ａdmin@example.com": "ａdmin@example.com",  # the lookalike keeps its old key: unreachable
        "ada@bücher.de": "ada@xn--bcher-kva.de",
        "zoe@example.com": "zoe@example.com",
        "bea@straße.de": "bea@xn--strae-oqa.de",
        "cy@σς.example": "cy@xn--3xab.example",
    }
    # The operator learns which account was left behind, and whose address it imitates.
    assert [entry["accounts"] for entry in logs if entry["log_level"] == "warning"] == [
        [{"id": str(uuid.UUID(int=2)), "same_address_as": str(uuid.UUID(int=1))}]
    ]
    with user.session(write=False) as session:
        repository = SqlAlchemyUserRepository(session, [])
        for email in ("ada@bücher.de", "bea@straße.de", "cy@σς.example"):
            local, _, domain = email.partition("@")
            found = repository.get_by_email(f"{local.upper()}@{domain}")
            assert found is not None and found.email == email
    # The revision's frozen copy of the rule and the rule logins use agree.
    assert {email: email_key(email) for email in keys if email != "ａdmin@example.com"} == {
        email: key for email, key in keys.items() if email != "ａdmin@example.com"
    }


def test_skus_differing_only_in_case_stop_the_upgrade_naming_them(databases: dict[str, Database]) -> None:
    """product_0006 makes skus unique case-insensitively; a catalog that already holds case
    variants is not changed, and the operator learns which skus to rename."""
    product = {"product": databases["product"]}
    upgrade_all(product, "product_0005")
    products = METADATA["product"].tables["product_products"]
    rows = [
        {
            "id": uuid.uuid4(),
            "sku": sku,
            "name": "n",
            "name_folded": "n",
            "price": Decimal("1.00"),
            "currency": "USD",
            "created_at": datetime.now(timezone.utc),
        }
        for sku in ("MUG-1", "mug-1", "TEA-1")
    ]
    with databases["product"].begin() as connection:
        connection.execute(products.insert(), rows)
    with pytest.raises(RuntimeError, match="MUG-1, mug-1; rename"):
        upgrade_all(product)
