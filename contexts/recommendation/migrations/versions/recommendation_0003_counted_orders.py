"""remember each counted order's basket, so that a cancelled order is subtracted again

``order.OrderCancelled`` carries no lines. Orders counted before this revision have no basket
here: their cancellation cannot be subtracted and is only remembered.

Revision ID: recommendation_0003
Revises: recommendation_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recommendation_0003"
down_revision = "recommendation_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recommendation_orders",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_recommendation_orders")),
    )
    op.create_table(
        "recommendation_order_lines",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["recommendation_orders.order_id"],
            name=op.f("fk_recommendation_order_lines_order_id_recommendation_orders"),
        ),
        sa.PrimaryKeyConstraint("order_id", "product_id", name=op.f("pk_recommendation_order_lines")),
    )


def downgrade() -> None:
    op.drop_table("recommendation_order_lines")
    op.drop_table("recommendation_orders")
