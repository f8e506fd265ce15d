"""Wires the audit context: its database, its inbox, the log reader and the subscribers."""

from __future__ import annotations

from dependency_injector import containers, providers

from contexts.audit.adapters import orm
from contexts.audit.adapters.unit_of_work import SqlAlchemyAuditUnitOfWork
from contexts.audit.application import handlers, subscribers
from infrastructure.db.database import Database
from infrastructure.events.inbox import Inbox


class AuditContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)

    inbox = providers.Singleton(Inbox, providers.Object(orm.INBOX))
    uow = providers.Factory(SqlAlchemyAuditUnitOfWork, database=database, inbox=inbox)

    record_entry = providers.Singleton(handlers.RecordEntryHandler, uow=uow.provider)
    list_entries = providers.Singleton(handlers.ListAuditEntriesHandler, uow=uow.provider)

    when_user_registered_audit = providers.Callable(subscribers.when_user_registered_audit, record=record_entry)
    when_order_placed_audit = providers.Callable(subscribers.when_order_placed_audit, record=record_entry)
    when_order_cancelled_audit = providers.Callable(subscribers.when_order_cancelled_audit, record=record_entry)
