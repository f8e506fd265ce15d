"""create the product context's tables

Revision ID: product_0001
Revises: 
Create Date: 2026-11-23 09:12:22.795294
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = 'product_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('product_products',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_folded', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_products')),
    sa.UniqueConstraint('sku', name=op.f('uq_product_products_sku'))
    )
    op.create_table('product_reservations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_reservations'))
    )
    op.create_table('product_reservation_lines',
    sa.Column('reservation_id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['product_products.id'], name=op.f('fk_product_reservation_lines_product_id_product_products')),
    sa.ForeignKeyConstraint(['reservation_id'], ['product_reservations.id'], name=op.f('fk_product_reservation_lines_reservation_id_product_reservations')),
    sa.PrimaryKeyConstraint('reservation_id', 'product_id', name=op.f('pk_product_reservation_lines'))
    )
    op.create_table('product_stock',
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('available', sa.BigInteger(), nullable=False),
    sa.Column('reserved', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('available >= 0', name=op.f('ck_product_stock_available_not_negative')),
    sa.CheckConstraint('reserved >= 0', name=op.f('ck_product_stock_reserved_not_negative')),
    sa.ForeignKeyConstraint(['product_id'], ['product_products.id'], name=op.f('fk_product_stock_product_id_product_products')),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_product_stock'))
    )
    op.create_table('product_stock_adjustments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('product_id', sa.Uuid(), nullable=False),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['product_products.id'], name=op.f('fk_product_stock_adjustments_product_id_product_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_stock_adjustments'))
    )
    with op.batch_alter_table('product_stock_adjustments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_product_stock_adjustments_product_id'), ['product_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('product_stock_adjustments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_stock_adjustments_product_id'))

    op.drop_table('product_stock_adjustments')
    op.drop_table('product_stock')
    op.drop_table('product_reservation_lines')
    op.drop_table('product_reservations')
    op.drop_table('product_products')
