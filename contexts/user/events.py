"""Facts the user context publishes. Standard library only; fields are a contract (API.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class UserRegistered:
    TYPE: ClassVar[str] = "user.UserRegistered"
    VERSION: ClassVar[int] = 1

    user_id: uuid.UUID
    email: str
    name: str
