"""Users and their roles, as plain Python."""

from __future__ import annotations

import contextlib
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from contexts.user import events


class Role(str, Enum):
    CUSTOMER = "customer"
    ADMIN = "admin"


def email_key(email: str) -> str:
    """What makes two addresses the same account: neither case, nor compatibility forms
    (fullwidth ``ａ``, ligatures), nor how an internationalised domain is spelled matter."""
    key = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).casefold()).strip()
    local, at, domain = key.rpartition("@")
    if at and not domain.isascii():
        # A domain no mail could reach is left as it is: no stored address has it.
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    return f"{local}{at}{domain}"


@dataclass
class User:
    id: uuid.UUID
    email: str
    name: str
    role: Role
    password_hash: str
    created_at: datetime
    events: list[Any] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def register(
        cls, *, email: str, name: str, password_hash: str, role: Role, now: datetime
    ) -> User:
        user = cls(
            id=uuid.uuid4(),
            email=email.strip(),
            name=name,
            role=role,
            password_hash=password_hash,
            created_at=now,
        )
        user.events.append(events.UserRegistered(user_id=user.id, email=user.email, name=user.name))
        return user

    @property
    def email_key(self) -> str:
        return email_key(self.email)

    def change_password_hash(self, password_hash: str) -> None:
        self.password_hash = password_hash
