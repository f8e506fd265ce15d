"""Wires the notification context: its database, its inbox, its use cases and the subscribers
that run them. It publishes nothing; the mailer is chosen by the app."""

from __future__ import annotations

from dependency_injector import containers, providers

from contexts.notification.adapters import orm
from contexts.notification.adapters.unit_of_work import SqlAlchemyNotificationUnitOfWork
from contexts.notification.application import handlers, subscribers
from contexts.notification.application.ports import Mailer
from infrastructure.db.database import Database
from infrastructure.events.inbox import Inbox


class NotificationContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    mailer: providers.Dependency[Mailer] = providers.Dependency()

    inbox = providers.Singleton(Inbox, providers.Object(orm.INBOX))
    uow = providers.Factory(SqlAlchemyNotificationUnitOfWork, database=database, inbox=inbox)

    remember_recipient = providers.Singleton(handlers.RememberRecipientHandler, uow=uow.provider)
    send_welcome = providers.Singleton(handlers.SendWelcomeHandler, uow=uow.provider, mailer=mailer)
    mail_the_buyer = providers.Singleton(handlers.MailTheBuyerHandler, uow=uow.provider, mailer=mailer)

    when_user_registered_remember_recipient = providers.Callable(
        subscribers.when_user_registered_remember_recipient, remember=remember_recipient
    )
    when_user_registered_send_welcome = providers.Callable(
        subscribers.when_user_registered_send_welcome, welcome=send_welcome
    )
    when_order_placed_send_confirmation = providers.Callable(
        subscribers.when_order_placed_send_confirmation, mail_the_buyer=mail_the_buyer
    )
    when_order_cancelled_send_notice = providers.Callable(
        subscribers.when_order_cancelled_send_notice, mail_the_buyer=mail_the_buyer
    )
