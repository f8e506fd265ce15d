"""the product context's event tables: outbox and deliveries, inbox

Revision ID: product_0002
Revises: product_0001
"""

from __future__ import annotations

from sqlalchemy import Table

from infrastructure.db.types import context_metadata
from infrastructure.events.tables import inbox_table, outbox_tables
from infrastructure.db.migrations import create_tables, drop_tables

revision = "product_0002"
down_revision = "product_0001"
branch_labels = None
depends_on = None


def _tables() -> tuple[Table, ...]:
    metadata = context_metadata()
    events = outbox_tables(metadata, "product", version=1)
    inbox = inbox_table(metadata, "product")
    return (events.outbox, events.deliveries, inbox)


def upgrade() -> None:
    create_tables(*_tables())


def downgrade() -> None:
    drop_tables(*_tables())
