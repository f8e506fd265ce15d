"""Alembic environment of the wishlist context: its own metadata, its own version table."""

from contexts.wishlist.adapters.orm import WishlistBase
from infrastructure.db.migrations import run_env

run_env(WishlistBase.metadata)
