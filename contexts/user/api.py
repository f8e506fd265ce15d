"""Published interface of the user context: what other contexts may call. Standard library only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class UserDTO:
    id: uuid.UUID
    email: str
    name: str
    role: str
    created_at: datetime


class UserNotFound(Exception):
    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"user {user_id} does not exist")
        self.user_id = user_id


class UserApi(Protocol):
    def get_user(self, user_id: uuid.UUID) -> UserDTO:
        """The user with this id; raises :class:`UserNotFound`."""
        ...
