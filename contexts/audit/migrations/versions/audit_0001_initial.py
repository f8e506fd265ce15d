"""create the audit context's tables: the log, and the inbox of its subscribers

Revision ID: audit_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from infrastructure.db.types import context_metadata
from infrastructure.events.tables import Position, inbox_table
from infrastructure.db.migrations import create_tables, drop_tables

revision = "audit_0001"
down_revision = None
branch_labels = None
depends_on = None


def _inbox() -> sa.Table:
    return inbox_table(context_metadata(), "audit")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("position", Position, autoincrement=True, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_entries_id")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_event_type_position", ["event_type", "position"], unique=False)
        batch_op.create_index("ix_audit_entries_entity_id_position", ["entity_id", "position"], unique=False)
    create_tables(_inbox())


def downgrade() -> None:
    drop_tables(_inbox())
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_entity_id_position")
        batch_op.drop_index("ix_audit_entries_event_type_position")
    op.drop_table("audit_entries")
