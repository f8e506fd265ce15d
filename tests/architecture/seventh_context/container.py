"""Wires the wishlist context: its database, its inbox, its use cases and its subscriber."""

from __future__ import annotations

from dependency_injector import containers, providers

from contexts.wishlist.adapters import orm
from contexts.wishlist.adapters.unit_of_work import SqlAlchemyWishlistUnitOfWork
from contexts.wishlist.application import handlers, subscribers
from infrastructure.db.database import Database
from infrastructure.events.inbox import Inbox


class WishlistContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)

    inbox = providers.Singleton(Inbox, providers.Object(orm.INBOX))
    uow = providers.Factory(SqlAlchemyWishlistUnitOfWork, database=database, inbox=inbox)

    open_wishlist = providers.Singleton(handlers.OpenWishlistHandler, uow=uow.provider)
    get_wishlist = providers.Singleton(handlers.GetWishlistHandler, uow=uow.provider)

    when_user_registered_open_wishlist = providers.Callable(
        subscribers.when_user_registered_open_wishlist, open_wishlist=open_wishlist
    )
