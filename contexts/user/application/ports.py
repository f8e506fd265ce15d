"""What the user context's use cases need from the outside world."""

from __future__ import annotations

import uuid
from typing import Protocol, Self

from contexts.user.domain import model


class UserRepository(Protocol):
    def add(self, user: model.User) -> None:
        """Raises ``EmailAlreadyRegistered`` if the email's key is taken."""

    def save(self, user: model.User) -> None:
        """Store the changes made to a user this repository handed out."""

    def get(self, user_id: uuid.UUID) -> model.User | None: ...

    def get_by_email(self, email: str) -> model.User | None: ...


class UserUnitOfWork(Protocol):
    users: UserRepository

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> UserUnitOfWork: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...
