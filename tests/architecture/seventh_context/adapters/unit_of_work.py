"""The wishlist context's transaction boundary on its own database, and its repository."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from contexts.wishlist.adapters.orm import WishlistRow
from contexts.wishlist.domain.model import Wishlist
from infrastructure.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyWishlistRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, wishlist: Wishlist) -> None:
        self._session.add(WishlistRow(owner_id=wishlist.owner_id, title=wishlist.title))

    def get(self, owner_id: uuid.UUID) -> Wishlist | None:
        row = self._session.get(WishlistRow, owner_id)
        return None if row is None else Wishlist(owner_id=row.owner_id, title=row.title)


class SqlAlchemyWishlistUnitOfWork(SqlAlchemyUnitOfWork):
    wishlists: SqlAlchemyWishlistRepository

    def _open(self, session: Session) -> None:
        self.wishlists = SqlAlchemyWishlistRepository(session)
