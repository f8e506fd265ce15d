"""Users stored with SQLAlchemy, translated to and from the domain model."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contexts.user.adapters.orm import UserRow
from contexts.user.application.ports import UserFilter
from contexts.user.domain import exceptions, model


class SqlAlchemyUserRepository:
    def __init__(self, session: Session, seen: list[Any]) -> None:
        self._session = session
        self._seen = seen

    def add(self, user: model.User) -> None:
        self._session.add(
            UserRow(
                id=user.id,
                email=user.email,
                email_key=user.email_key,
                name=user.name,
                role=user.role.value,
                password_hash=user.password_hash,
                created_at=user.created_at,
            )
        )
        try:
            self._session.flush()
        except IntegrityError as error:
            raise exceptions.EmailAlreadyRegistered(user.email) from error
        self._seen.append(user)

    def save(self, user: model.User) -> None:
        row = self._session.get_one(UserRow, user.id)
        row.name = user.name
        row.role = user.role.value
        row.password_hash = user.password_hash
        self._seen.append(user)

    def get(self, user_id: uuid.UUID) -> model.User | None:
        row = self._session.get(UserRow, user_id)
        return _to_model(row) if row else None

    def get_by_email(self, email: str) -> model.User | None:
        row = self._session.scalar(select(UserRow).where(UserRow.email_key == model.email_key(email)))
        return _to_model(row) if row else None

    def list_matching(self, where: UserFilter, *, limit: int, after: str | None) -> list[model.User]:
        """Users by email key, from just after ``after``.

        Keys compare by code point (SQLite's binary collation; the column's ``"C"`` collation on
        PostgreSQL), so a prefix is a range of the unique key index, or of
        ``ix_user_users_role_key`` (``role, email_key``) with a role, read in the listing's order."""
        statement = select(UserRow).order_by(UserRow.email_key).limit(limit)
        if where.role is not None:
            statement = statement.where(UserRow.role == where.role.value)
        if where.key_prefix is not None:
            statement = statement.where(
                UserRow.email_key >= where.key_prefix, UserRow.email_key < where.key_prefix + PAST_ANY
            )
        if after is not None:
            statement = statement.where(UserRow.email_key > after)
        return [_to_model(row) for row in self._session.scalars(statement)]


# Above every character an email key holds (they are ASCII since user_0004, folded Unicode before):
# ``key >= prefix AND key < prefix + PAST_ANY`` is every key that starts with the prefix.
PAST_ANY = "\U0010ffff"


def _to_model(row: UserRow) -> model.User:
    return model.User(
        id=row.id,
        email=row.email,
        name=row.name,
        role=model.Role(row.role),
        password_hash=row.password_hash,
        created_at=row.created_at,
    )
