"""the order context's event tables: outbox and deliveries

Revision ID: order_0002
Revises: order_0001
"""

from __future__ import annotations

from sqlalchemy import Table

from infrastructure.db.types import context_metadata
from infrastructure.events.tables import outbox_tables
from infrastructure.db.migrations import create_tables, drop_tables

revision = "order_0002"
down_revision = "order_0001"
branch_labels = None
depends_on = None


def _tables() -> tuple[Table, ...]:
    metadata = context_metadata()
    events = outbox_tables(metadata, "order", version=1)
    return (events.outbox, events.deliveries)


def upgrade() -> None:
    create_tables(*_tables())


def downgrade() -> None:
    drop_tables(*_tables())
