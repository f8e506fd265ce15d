"""A wishlist: whose it is and what it is called."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


class WishlistNotFound(LookupError):
    """The user has no wishlist (unknown, or their registration is not delivered yet)."""


@dataclass(frozen=True)
class Wishlist:
    owner_id: uuid.UUID
    title: str
