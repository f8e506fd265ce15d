"""Wires the order context. The product API it calls is a dependency: in process or remote."""

from __future__ import annotations

from dependency_injector import containers, providers

from contexts.order.adapters import orm
from contexts.order.adapters.unit_of_work import SqlAlchemyOrderUnitOfWork
from contexts.order.application import facade, handlers
from contexts.product.api import ProductApi
from infrastructure.db.database import Database
from infrastructure.events.bus import EventBus
from infrastructure.events.outbox import Outbox


class OrderContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    event_bus = providers.Dependency(instance_of=EventBus)
    product_api: providers.Dependency[ProductApi] = providers.Dependency()

    outbox = providers.Singleton(
        Outbox, "order", database=database, tables=providers.Object(orm.OUTBOX), subscribers=event_bus
    )
    uow = providers.Factory(SqlAlchemyOrderUnitOfWork, database=database, outbox=outbox)

    place_order = providers.Singleton(handlers.PlaceOrderHandler, uow=uow.provider, products=product_api)
    get_order = providers.Singleton(handlers.GetOrderHandler, uow=uow.provider)
    list_orders = providers.Singleton(handlers.ListOrdersHandler, uow=uow.provider)
    list_all_orders = providers.Singleton(handlers.ListAllOrdersHandler, uow=uow.provider)
    cancel_order = providers.Singleton(handlers.CancelOrderHandler, uow=uow.provider, products=product_api)

    api = providers.Singleton(facade.OrderFacade, get_order=get_order)
