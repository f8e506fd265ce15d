"""Alembic environment of the notification context: its own metadata, its own version table."""

from contexts.notification.adapters.orm import NotificationBase
from infrastructure.db.migrations import run_env

run_env(NotificationBase.metadata)
