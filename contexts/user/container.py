"""Wires the user context. What it needs from outside is declared as dependencies."""

from __future__ import annotations

from dependency_injector import containers, providers

from contexts.user.adapters import orm
from contexts.user.adapters.passwords import Argon2PasswordHasher
from contexts.user.adapters.unit_of_work import SqlAlchemyUserUnitOfWork
from contexts.user.application import facade, handlers
from infrastructure.auth.tokens import TokenService
from infrastructure.db.database import Database
from infrastructure.events.bus import EventBus
from infrastructure.events.outbox import Outbox


class UserContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    event_bus = providers.Dependency(instance_of=EventBus)
    tokens = providers.Dependency(instance_of=TokenService)
    password_hasher = providers.Dependency(instance_of=Argon2PasswordHasher)

    outbox = providers.Singleton(
        Outbox, "user", database=database, tables=providers.Object(orm.OUTBOX), subscribers=event_bus
    )
    uow = providers.Factory(SqlAlchemyUserUnitOfWork, database=database, outbox=outbox)

    register_user = providers.Singleton(handlers.RegisterUserHandler, uow=uow.provider, hasher=password_hasher)
    issue_token = providers.Singleton(
        handlers.IssueTokenHandler, uow=uow.provider, hasher=password_hasher, tokens=tokens
    )
    get_user = providers.Singleton(handlers.GetUserHandler, uow=uow.provider)
    list_users = providers.Singleton(handlers.ListUsersHandler, uow=uow.provider)

    api = providers.Singleton(facade.UserFacade, get_user=get_user)
