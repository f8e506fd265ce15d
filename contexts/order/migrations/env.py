"""Alembic environment of the order context: its own metadata, its own version table."""

from contexts.order.adapters.orm import OrderBase
from infrastructure.db.migrations import run_env

run_env(OrderBase.metadata)
