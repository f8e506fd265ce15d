"""Wires the product context. What it needs from outside is declared as dependencies."""

from __future__ import annotations

from datetime import timedelta

from dependency_injector import containers, providers

from contexts.product.adapters import orm
from contexts.product.adapters.catalogue import SqlAlchemyCatalogue
from contexts.product.adapters.unit_of_work import SqlAlchemyProductUnitOfWork
from contexts.product.application import facade, handlers, subscribers
from infrastructure.db.database import Database
from infrastructure.events.bus import EventBus
from infrastructure.events.inbox import Inbox
from infrastructure.events.outbox import Outbox


class ProductContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    event_bus = providers.Dependency(instance_of=EventBus)
    reservation_ttl = providers.Dependency(instance_of=timedelta)

    outbox = providers.Singleton(
        Outbox, "product", database=database, tables=providers.Object(orm.OUTBOX), subscribers=event_bus
    )
    inbox = providers.Singleton(Inbox, providers.Object(orm.INBOX))
    uow = providers.Factory(SqlAlchemyProductUnitOfWork, database=database, outbox=outbox, inbox=inbox)
    catalogue = providers.Singleton(SqlAlchemyCatalogue, database=database)

    create_product = providers.Singleton(handlers.CreateProductHandler, uow=uow.provider)
    revise_product = providers.Singleton(handlers.ReviseProductHandler, uow=uow.provider)
    adjust_stock = providers.Singleton(handlers.AdjustStockHandler, uow=uow.provider)
    get_product = providers.Singleton(handlers.GetProductHandler, catalogue=catalogue)
    get_products = providers.Singleton(handlers.GetProductsHandler, catalogue=catalogue)
    list_products = providers.Singleton(handlers.ListProductsHandler, uow=uow.provider)
    reserve_stock = providers.Singleton(handlers.ReserveStockHandler, uow=uow.provider)
    release_stock = providers.Singleton(handlers.ReleaseStockHandler, uow=uow.provider)
    confirm_reservation = providers.Singleton(handlers.ConfirmReservationHandler, uow=uow.provider)
    expire_reservations = providers.Singleton(handlers.ExpireReservationsHandler, uow=uow.provider, ttl=reservation_ttl)

    api = providers.Singleton(
        facade.ProductFacade, get_products=get_products, reserve=reserve_stock, release=release_stock
    )

    when_order_placed_confirm_reservation = providers.Callable(
        subscribers.when_order_placed_confirm_reservation, confirm=confirm_reservation
    )
    when_order_cancelled_release_stock = providers.Callable(
        subscribers.when_order_cancelled_release_stock, release=release_stock
    )
