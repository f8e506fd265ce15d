"""index the reservations the expiry sweep looks for

Revision ID: product_0003
Revises: product_0002
"""

from __future__ import annotations

from alembic import op

revision = "product_0003"
down_revision = "product_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_product_reservations_status_created_at", "product_reservations", ["status", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_product_reservations_status_created_at", table_name="product_reservations")
