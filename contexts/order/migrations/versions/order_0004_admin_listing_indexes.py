"""the order context's orders: indexes for the administrators' listing, newest first

``GET /admin/orders`` lists every customer's orders newest first, optionally of one status or
placed within a time range; without these, a page walked the whole table and sorted it.

Revision ID: order_0004
Revises: order_0003
"""

from __future__ import annotations

from alembic import op

revision = "order_0004"
down_revision = "order_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_order_orders_newest", "order_orders", ["created_at", "id"])
    op.create_index("ix_order_orders_status_newest", "order_orders", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_order_orders_status_newest", table_name="order_orders")
    op.drop_index("ix_order_orders_newest", table_name="order_orders")
