"""the product context's deliveries: partial indexes over those not done replace the full ones

A million completed deliveries made every claim and `shop events status` walk them; version
2 of the event tables indexes only pending and dead deliveries (infrastructure/events/tables.py).

Revision ID: product_0004
Revises: product_0003
"""

from __future__ import annotations

from alembic import op

from infrastructure.db.types import context_metadata
from infrastructure.events.tables import outbox_tables

revision = "product_0004"
down_revision = "product_0003"
branch_labels = None
depends_on = None


def _replace_indexes(old_version: int, new_version: int) -> None:
    bind = op.get_bind()
    for index in outbox_tables(context_metadata(), "product", version=old_version).deliveries.indexes:
        index.drop(bind)
    for index in outbox_tables(context_metadata(), "product", version=new_version).deliveries.indexes:
        index.create(bind)


def upgrade() -> None:
    _replace_indexes(1, 2)


def downgrade() -> None:
    _replace_indexes(2, 1)
