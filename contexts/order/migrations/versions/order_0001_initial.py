"""create the order context's tables

Revision ID: order_0001
Revises: 
Create Date: 2026-11-23 09:12:22.821586
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = 'order_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('order_idempotency_keys',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('order_snapshot', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'key', name=op.f('pk_order_idempotency_keys'))
    )
    op.create_table('order_orders',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_orders'))
    )
    with op.batch_alter_table('order_orders', schema=None) as batch_op:
        batch_op.create_index('ix_order_orders_user_newest', ['user_id', 'created_at', 'id'], unique=False)

    op.create_table('order_order_lines',
    sa.Column('order_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('unit_price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['order_orders.id'], name=op.f('fk_order_order_lines_order_id_order_orders')),
    sa.PrimaryKeyConstraint('order_id', 'position', name=op.f('pk_order_order_lines'))
    )


def downgrade() -> None:
    op.drop_table('order_order_lines')
    with op.batch_alter_table('order_orders', schema=None) as batch_op:
        batch_op.drop_index('ix_order_orders_user_newest')

    op.drop_table('order_orders')
    op.drop_table('order_idempotency_keys')
