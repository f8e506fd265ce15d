"""Users and their roles, as plain Python."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import idna

from contexts.user import events


class Role(str, Enum):
    CUSTOMER = "customer"
    ADMIN = "admin"


def email_key(email: str) -> str:
    """What makes two addresses the same account: neither case nor compatibility forms
    (fullwidth ``ａ``, ligatures) in the local part, nor how an internationalised domain is
    spelled. The domain is brought to ASCII as registration stores it (email_validator: IDNA 2008
    with UTS 46, where ``ß``, final ``ς`` and joiners are letters of their own), not folded with
    the local part: ``ada@straße.de`` is ``xn--strae-oqa.de``, never ``strasse.de``."""
    local, at, domain = email.strip().rpartition("@")
    if not at:
        return _folded(domain)
    return f"{_folded(local)}@{_ascii_domain(domain)}"


def email_key_prefix(prefix: str) -> str:
    """What the keys of the addresses starting with ``prefix`` start with: folded as
    :func:`email_key` folds (case, compatibility forms). A domain is matched as stored, in ASCII:
    a part of an internationalised domain cannot be converted alone, so it is folded only."""
    return _folded(prefix.strip())


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _ascii_domain(domain: str) -> str:
    try:
        return idna.encode(domain, uts46=True, std3_rules=False, transitional=False).decode("ascii")
    except idna.IDNAError:
        # No mail could reach such a domain, so no stored address has it: any stable key does.
        return _folded(domain)


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
    def register(cls, *, email: str, name: str, password_hash: str, role: Role, now: datetime) -> User:
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
