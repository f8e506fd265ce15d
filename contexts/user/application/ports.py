"""What the user context's use cases need from the outside world."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol, Self

from contexts.user.domain import model


@dataclass(frozen=True)
class UserFilter:
    """Which users an administrator lists: each given criterion must hold.

    ``key_prefix`` is already folded (``model.email_key_prefix``): users are listed by email key."""

    key_prefix: str | None = None
    role: model.Role | None = None


class UserRepository(Protocol):
    def add(self, user: model.User) -> None:
        """Raises ``EmailAlreadyRegistered`` if the email's key is taken."""

    def save(self, user: model.User) -> None:
        """Store the changes made to a user this repository handed out."""

    def get(self, user_id: uuid.UUID) -> model.User | None: ...

    def get_by_email(self, email: str) -> model.User | None: ...

    def list_matching(self, where: UserFilter, *, limit: int, after: str | None) -> list[model.User]:
        """Users matching ``where`` in the order of their email keys, those after ``after``."""
        ...


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
