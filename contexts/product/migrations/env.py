"""Alembic environment of the product context: its own metadata, its own version table.

The search index (see ``contexts.product.adapters.search``) is built by hand, outside the
metadata, and left out of autogenerate's comparison.
"""

from contexts.product.adapters.orm import ProductBase
from contexts.product.adapters.search import modelled
from infrastructure.db.migrations import run_env

run_env(ProductBase.metadata, include_name=modelled)
