"""What the wishlist use cases need of storage."""

from __future__ import annotations

import uuid
from typing import Protocol, Self

from contexts.wishlist.domain.model import Wishlist
from infrastructure.events.delivery import Delivery


class WishlistRepository(Protocol):
    def add(self, wishlist: Wishlist) -> None: ...

    def get(self, owner_id: uuid.UUID) -> Wishlist | None: ...


class UnitOfWork(Protocol):
    wishlists: WishlistRepository

    def __enter__(self) -> Self: ...

    def __exit__(self, *args: object) -> None: ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> UnitOfWork: ...
