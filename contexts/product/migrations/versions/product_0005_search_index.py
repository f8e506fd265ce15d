"""index the catalog for search: q as a substring of name or sku without reading every product

SQLite: an FTS5 table with the trigram tokenizer over product_products' name_folded and sku
(external content: the index only, keyed by rowid), kept in step by triggers, and built from the
products already there. PostgreSQL: GIN trigram indexes on name_folded and lower(sku), with
pg_trgm's operator class named by its schema, since each context's search_path holds only its
own schema. The extension is used wherever the database has it; without it, it is created in
the schema ``extensions`` (pg_trgm is a trusted extension: from PostgreSQL 13 a role that may
create schemas in the database may install it). The downgrade drops the indexes and keeps the
extension, which other schemas of the database may use.

Revision ID: product_0005
Revises: product_0004
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text

revision = "product_0005"
# At merge with the outbox-index branch: 'product_0004' (it adds product_0004 on product_0003).
down_revision = "product_0004"
branch_labels = None
depends_on = None

EXTENSION_SCHEMA = "extensions"

SQLITE_UPGRADE = (
    """
    CREATE VIRTUAL TABLE product_search USING fts5(
        name_folded, sku, content='product_products', content_rowid='rowid', tokenize='trigram'
    )
    """,
    """
    CREATE TRIGGER product_search_after_insert AFTER INSERT ON product_products BEGIN
        INSERT INTO product_search(rowid, name_folded, sku) VALUES (new.rowid, new.name_folded, new.sku);
    END
    """,
    """
    CREATE TRIGGER product_search_after_delete AFTER DELETE ON product_products BEGIN
        INSERT INTO product_search(product_search, rowid, name_folded, sku)
        VALUES ('delete', old.rowid, old.name_folded, old.sku);
    END
    """,
    """
    CREATE TRIGGER product_search_after_update AFTER UPDATE OF name_folded, sku ON product_products BEGIN
        INSERT INTO product_search(product_search, rowid, name_folded, sku)
        VALUES ('delete', old.rowid, old.name_folded, old.sku);
        INSERT INTO product_search(rowid, name_folded, sku) VALUES (new.rowid, new.name_folded, new.sku);
    END
    """,
    "INSERT INTO product_search(product_search) VALUES ('rebuild')",
)
SQLITE_DOWNGRADE = (
    "DROP TRIGGER product_search_after_update",
    "DROP TRIGGER product_search_after_delete",
    "DROP TRIGGER product_search_after_insert",
    "DROP TABLE product_search",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_UPGRADE:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        opclass = f"{_quoted(bind, _trigram_schema(bind))}.gin_trgm_ops"
        op.execute(
            f"CREATE INDEX ix_product_products_name_folded_trgm ON product_products USING gin (name_folded {opclass})"
        )
        op.execute(f"CREATE INDEX ix_product_products_sku_trgm ON product_products USING gin (lower(sku) {opclass})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_DOWNGRADE:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX ix_product_products_sku_trgm")
        op.execute("DROP INDEX ix_product_products_name_folded_trgm")


def _trigram_schema(bind: Connection) -> str:
    """The schema holding pg_trgm, installing it first if the database does not have it yet.

    One lock for every migration on this server that may install it: two shops migrating at
    once would otherwise both try, and one would fail on the unique extension name.
    """
    bind.execute(text("SELECT pg_advisory_xact_lock(hashtext('modular-shop: CREATE EXTENSION pg_trgm'))"))
    installed = bind.scalar(
        text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pg_trgm'"
        )
    )
    if installed is not None:
        return str(installed)
    schema = _quoted(bind, EXTENSION_SCHEMA)
    bind.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    bind.exec_driver_sql(f"CREATE EXTENSION pg_trgm SCHEMA {schema}")
    return EXTENSION_SCHEMA


def _quoted(bind: Connection, name: str) -> str:
    return bind.dialect.identifier_preparer.quote_identifier(name)
