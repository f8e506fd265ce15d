"""the user context's users: listed by email key for administrators, by prefix and role

``GET /admin/users`` lists accounts by email key, optionally those starting with a prefix or
of one role. A prefix is a range of the key index only where keys compare by code point:
SQLite's default, and on PostgreSQL the ``"C"`` collation given to the column here (equality,
all other queries use, means the same under both collations). ``ix_user_users_role_key``
serves the listing of one role.

Revision ID: user_0005
Revises: user_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "user_0005"
down_revision = "user_0004"
branch_labels = None
depends_on = None


def _key_collation(collation: str | None) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "user_users",
            "email_key",
            type_=sa.String(320, collation=collation),
            existing_type=sa.String(320),
            existing_nullable=False,
        )


def upgrade() -> None:
    _key_collation("C")
    op.create_index("ix_user_users_role_key", "user_users", ["role", "email_key"])


def downgrade() -> None:
    op.drop_index("ix_user_users_role_key", table_name="user_users")
    _key_collation(None)
