"""Alembic environment of the audit context: its own metadata, its own version table."""

from contexts.audit.adapters.orm import AuditBase
from infrastructure.db.migrations import run_env

run_env(AuditBase.metadata)
