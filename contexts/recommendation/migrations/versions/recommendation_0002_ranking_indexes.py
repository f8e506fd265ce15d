"""index popularity in ranking order, so the most popular products are read, not sorted

Revision ID: recommendation_0002
Revises: recommendation_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recommendation_0002"
down_revision = "recommendation_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_recommendation_popularity_ranked",
        "recommendation_popularity",
        [sa.text("orders DESC"), "product_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_recommendation_popularity_ranked", table_name="recommendation_popularity")
