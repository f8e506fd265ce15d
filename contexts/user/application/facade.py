"""The in-process implementation of the published :class:`~contexts.user.api.UserApi`."""

from __future__ import annotations

import uuid

from contexts.user.api import UserDTO
from contexts.user.application.handlers import GetUser, GetUserHandler


class UserFacade:
    def __init__(self, *, get_user: GetUserHandler) -> None:
        self._get_user = get_user

    def get_user(self, user_id: uuid.UUID) -> UserDTO:
        return self._get_user(GetUser(user_id))
