"""skus unique case-insensitively: a unique index on lower(sku)

``MUG-1`` and ``mug-1`` were two products. Skus are ASCII (the API's pattern), which lower()
folds alike on SQLite and PostgreSQL. A catalog that already holds case variants cannot take
the index: the upgrade stops naming them, to be renamed first (PATCH cannot change a sku, so by
hand in the database), rather than choose which product loses its sku.

Revision ID: product_0006
Revises: product_0005
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "product_0006"
down_revision = "product_0005"
branch_labels = None
depends_on = None

INDEX = "uq_product_products_sku_lower"


def upgrade() -> None:
    variants = (
        op.get_bind()
        .execute(
            text(
                "SELECT sku FROM product_products WHERE lower(sku) IN"
                " (SELECT lower(sku) FROM product_products GROUP BY lower(sku) HAVING count(*) > 1)"
                " ORDER BY lower(sku), sku"
            )
        )
        .scalars()
        .all()
    )
    if variants:
        raise RuntimeError(
            "skus must be unique case-insensitively, but the catalog holds case variants of one another: "
            f"{', '.join(variants)}; rename all but one of each before upgrading"
        )
    op.execute(f"CREATE UNIQUE INDEX {INDEX} ON product_products (lower(sku))")


def downgrade() -> None:
    op.execute(f"DROP INDEX {INDEX}")
