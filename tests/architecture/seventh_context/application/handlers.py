"""The wishlist use cases: open one, read one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from contexts.wishlist.application.ports import UnitOfWorkFactory
from contexts.wishlist.domain.model import Wishlist, WishlistNotFound
from infrastructure.events.delivery import Delivery


@dataclass(frozen=True)
class OpenWishlist:
    owner_id: uuid.UUID
    owner_name: str


@dataclass(frozen=True)
class GetWishlist:
    owner_id: uuid.UUID


class OpenWishlistHandler:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: OpenWishlist, *, delivery: Delivery | None = None) -> None:
        """``delivery``: the event delivery this is the effect of, recorded with it."""
        with self._uow(delivery=delivery) as unit:
            unit.wishlists.add(Wishlist(owner_id=command.owner_id, title=f"{command.owner_name}'s wishlist"))
            unit.commit()


class GetWishlistHandler:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: GetWishlist) -> Wishlist:
        with self._uow() as unit:
            wishlist = unit.wishlists.get(query.owner_id)
        if wishlist is None:
            raise WishlistNotFound(f"user {query.owner_id} has no wishlist")
        return wishlist
