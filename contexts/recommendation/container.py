"""Wires the recommendation context. The product API it describes products with is a dependency."""

from __future__ import annotations

from dependency_injector import containers, providers

from contexts.product.api import ProductApi
from contexts.recommendation.adapters import orm
from contexts.recommendation.adapters.unit_of_work import SqlAlchemyRecommendationUnitOfWork
from contexts.recommendation.application import handlers, subscribers
from infrastructure.db.database import Database
from infrastructure.events.inbox import Inbox


class RecommendationContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    product_api: providers.Dependency[ProductApi] = providers.Dependency()

    inbox = providers.Singleton(Inbox, providers.Object(orm.INBOX))
    uow = providers.Factory(SqlAlchemyRecommendationUnitOfWork, database=database, inbox=inbox)

    create_profile = providers.Singleton(handlers.CreateProfileHandler, uow=uow.provider)
    record_purchase = providers.Singleton(handlers.RecordPurchaseHandler, uow=uow.provider)
    subtract_purchase = providers.Singleton(handlers.SubtractPurchaseHandler, uow=uow.provider)
    recommend = providers.Singleton(handlers.RecommendHandler, uow=uow.provider, products=product_api)

    when_user_registered_create_profile = providers.Callable(
        subscribers.when_user_registered_create_profile, create_profile=create_profile
    )
    when_order_placed_record_purchase = providers.Callable(
        subscribers.when_order_placed_record_purchase, record_purchase=record_purchase
    )
    when_order_cancelled_subtract_purchase = providers.Callable(
        subscribers.when_order_cancelled_subtract_purchase, subtract_purchase=subtract_purchase
    )
