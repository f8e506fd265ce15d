"""Alembic environment of the notification context: its own metadata, its own version table."""

from contexts.notification.adapters.orm import NotificationBase
from infrastructure.migrations import run_env

run_env(NotificationBase.metadata)
