"""Wires the notification context. It publishes nothing; the mailer is chosen by the app."""

from __future__ import annotations

from dependency_injector import containers, providers

from contexts.notification.adapters import orm
from contexts.notification.adapters.unit_of_work import SqlAlchemyNotificationUnitOfWork
from contexts.notification.application import subscribers
from contexts.notification.application.ports import Mailer
from infrastructure.db import Database
from infrastructure.events.inbox import Inbox


class NotificationContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    mailer: providers.Dependency[Mailer] = providers.Dependency()

    inbox = providers.Singleton(Inbox, providers.Object(orm.INBOX))
    uow = providers.Factory(SqlAlchemyNotificationUnitOfWork, database=database, inbox=inbox)

    when_user_registered_remember_recipient = providers.Callable(
        subscribers.when_user_registered_remember_recipient, uow=uow.provider
    )
    when_user_registered_send_welcome = providers.Callable(
        subscribers.when_user_registered_send_welcome, uow=uow.provider, mailer=mailer
    )
    when_order_placed_send_confirmation = providers.Callable(
        subscribers.when_order_placed_send_confirmation, uow=uow.provider, mailer=mailer
    )
    when_order_cancelled_send_notice = providers.Callable(
        subscribers.when_order_cancelled_send_notice, uow=uow.provider, mailer=mailer
    )
