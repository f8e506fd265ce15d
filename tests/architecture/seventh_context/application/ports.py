"""What the wishlist use cases need of storage."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol, Self

from contexts.wishlist.domain.model import Wishlist


class WishlistRepository(Protocol):
    def add(self, wishlist: Wishlist) -> None: ...

    def get(self, owner_id: uuid.UUID) -> Wishlist | None: ...


class UnitOfWork(Protocol):
    wishlists: WishlistRepository

    def __enter__(self) -> Self: ...

    def __exit__(self, *args: object) -> None: ...

    def commit(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]
