"""create the wishlist context's tables: its wishlists, and the inbox of its subscriber

Revision ID: wishlist_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from infrastructure.db.migrations import create_tables, drop_tables
from infrastructure.db.types import context_metadata
from infrastructure.events.tables import inbox_table

revision = "wishlist_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wishlist_wishlists",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_wishlist_wishlists")),
    )
    create_tables(inbox_table(context_metadata(), "wishlist"))


def downgrade() -> None:
    drop_tables(inbox_table(context_metadata(), "wishlist"))
    op.drop_table("wishlist_wishlists")
