"""create the user context's tables

Revision ID: user_0001
Revises: 
Create Date: 2026-11-23 09:12:22.764946
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = 'user_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_users',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_users')),
    sa.UniqueConstraint('email_key', name=op.f('uq_user_users_email_key'))
    )


def downgrade() -> None:
    op.drop_table('user_users')
