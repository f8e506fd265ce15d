"""create the notification context's tables: recipients, sent mail, inbox

Revision ID: notification_0001
Revises: 
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from infrastructure.db.types import context_metadata
from infrastructure.events.tables import inbox_table
from infrastructure.db.migrations import create_tables, drop_tables

revision = 'notification_0001'
down_revision = None
branch_labels = None
depends_on = None


def _inbox() -> sa.Table:
    return inbox_table(context_metadata(), "notification")


def upgrade() -> None:
    op.create_table('notification_recipients',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_notification_recipients'))
    )
    op.create_table('notification_sent_mail',
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('to_address', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_notification_sent_mail'))
    )
    create_tables(_inbox())


def downgrade() -> None:
    drop_tables(_inbox())
    op.drop_table('notification_sent_mail')
    op.drop_table('notification_recipients')
