"""Alembic environment of the product context: its own metadata, its own version table."""

from contexts.product.adapters.orm import ProductBase
from infrastructure.migrations import run_env

run_env(ProductBase.metadata)
