"""Alembic environment of the user context: its own metadata, its own version table."""

from contexts.user.adapters.orm import UserBase
from infrastructure.db.migrations import run_env

run_env(UserBase.metadata)
