"""create the recommendation context's tables: profiles, purchase counts, inbox

Revision ID: recommendation_0001
Revises:
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Table

from infrastructure.db.types import context_metadata
from infrastructure.events.tables import inbox_table
from infrastructure.db.migrations import create_tables, drop_tables

revision = 'recommendation_0001'
down_revision = None
branch_labels = None
depends_on = None


def _inbox() -> Table:
    return inbox_table(context_metadata(), "recommendation")


def upgrade() -> None:
    op.create_table('recommendation_profiles',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_recommendation_profiles'))
    )
    op.create_table('recommendation_purchases',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'product_id', name=op.f('pk_recommendation_purchases'))
    )
    op.create_table('recommendation_popularity',
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('orders', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_recommendation_popularity'))
    )
    op.create_table('recommendation_pairs',
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('other_product_id', sa.Uuid(), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('product_id', 'other_product_id', name=op.f('pk_recommendation_pairs'))
    )
    create_tables(_inbox())


def downgrade() -> None:
    drop_tables(_inbox())
    op.drop_table('recommendation_pairs')
    op.drop_table('recommendation_popularity')
    op.drop_table('recommendation_purchases')
    op.drop_table('recommendation_profiles')
