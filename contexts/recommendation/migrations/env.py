"""Alembic environment of the recommendation context: its own metadata, its own version table."""

from contexts.recommendation.adapters.orm import RecommendationBase
from infrastructure.db.migrations import run_env

run_env(RecommendationBase.metadata)
