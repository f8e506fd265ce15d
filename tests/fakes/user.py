"""The user context's ports in memory."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from contexts.user.application import ports as user_ports
from contexts.user.application.ports import UserFilter
from contexts.user.domain import exceptions as user_exceptions
from contexts.user.domain import model as user_model
from tests.fakes.common import (
    FakeUnitOfWork,
    Staged,
    Store,
    Table,
    detached,
)


class FakeUserRepository:
    def __init__(self, users: Staged[uuid.UUID, user_model.User], seen: list[Any]) -> None:
        self._users = users
        self._seen = seen

    def add(self, user: user_model.User) -> None:
        if any(other.email_key == user.email_key for other in self._users.values()):
            raise user_exceptions.EmailAlreadyRegistered(user.email)
        self._users.put(user.id, detached(user))
        self._seen.append(user)

    def save(self, user: user_model.User) -> None:
        if self._users.get(user.id) is None:
            raise KeyError(user.id)
        self._users.put(user.id, detached(user))
        self._seen.append(user)

    def get(self, user_id: uuid.UUID) -> user_model.User | None:
        user = self._users.get(user_id)
        return detached(user) if user else None

    def get_by_email(self, email: str) -> user_model.User | None:
        key = user_model.email_key(email)
        for user in self._users.values():
            if user.email_key == key:
                return detached(user)
        return None

    def list_matching(self, where: UserFilter, *, limit: int, after: str | None) -> list[user_model.User]:
        found = sorted(
            (
                user
                for user in self._users.values()
                if (where.role is None or user.role is where.role)
                and (where.key_prefix is None or user.email_key.startswith(where.key_prefix))
                and (after is None or user.email_key > after)
            ),
            key=lambda user: user.email_key,
        )
        return [detached(user) for user in found[:limit]]


class FakeUserUnitOfWork(FakeUnitOfWork):
    users: user_ports.UserRepository

    def __init__(self, store: UserStore, *, write: bool) -> None:
        super().__init__(store, write=write)
        self._store = store

    def _open(self) -> None:
        self.users = FakeUserRepository(self._stage(self._store.users), self.seen)


class UserStore(Store):
    """The user context's storage and its unit-of-work factory."""

    def __init__(self) -> None:
        super().__init__()
        self.users: Table[uuid.UUID, user_model.User] = Table()

    def __call__(self, *, write: bool = True) -> FakeUserUnitOfWork:
        return FakeUserUnitOfWork(self, write=write)


if TYPE_CHECKING:  # mypy proves the fakes implement the ports they stand in for
    _factory: user_ports.UnitOfWorkFactory = UserStore()
