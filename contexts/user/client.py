"""The remote implementation of the published :class:`~contexts.user.api.UserApi`.

Published beside ``api.py`` and ``events.py`` (ARCHITECTURE rule 1): a process that does not
serve the user context gets this client instead of the in-process facade, so that every bearer
token it sees is still checked against the user's record (do they exist, which role now) —
a signature alone proves neither. It speaks to the internal endpoints the user service serves
(``contexts/user/http.py``) and re-raises their refusals as the typed errors of ``api.py``;
it may also raise :class:`~infrastructure.errors.DependencyUnavailable` when the service does
not answer (a 503 at the edge: a token that cannot be checked is not trusted).

This module also defines the wire format both sides share: paths and problem codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contexts.user.api import UserDTO, UserNotFound
from infrastructure.auth.tokens import TokenKeys
from infrastructure.errors import DependencyMisconfigured, UnexpectedAnswer

if TYPE_CHECKING:
    # The HTTP client (httpx, tenacity, pybreaker) is the caller's: a service serving this
    # context's internal endpoints shares this module's wire format without it.
    import httpx

    from infrastructure.remote.service import RemoteService

INTERNAL_PREFIX = "/internal/v1/user"
# The ``code`` member of the problem an unknown user id is answered with.
USER_NOT_FOUND = "user_not_found"

NO_INTERNAL_ENDPOINTS = (
    "USER_SERVICE_URL does not lead to a user service serving internal endpoints"
    " (SERVED_CONTEXTS including user, and SERVICE_TOKEN, set there)"
)


def user_path(user_id: uuid.UUID) -> str:
    return f"{INTERNAL_PREFIX}/users/{user_id}"


class RemoteUserApi:
    """Reads only, so every call may be retried."""

    def __init__(self, service: RemoteService) -> None:
        self._service = service

    def get_user(self, user_id: uuid.UUID) -> UserDTO:
        response = self._service.request("GET", user_path(user_id), idempotent=True)
        if response.status_code == 200:
            return self._user(response)
        problem = _problem(response)
        if response.status_code == 404 and problem.get("code") == USER_NOT_FOUND:
            raise UserNotFound(user_id)
        if response.status_code == 404:
            # The client only asks for well-formed ids on paths the user service serves.
            raise DependencyMisconfigured(self._service.name, NO_INTERNAL_ENDPOINTS)
        raise UnexpectedAnswer(self._service.name, response.status_code, str(problem.get("detail", "")))

    def check_access(self, tokens: TokenKeys) -> None:
        """Readiness: see :func:`infrastructure.remote.access.check_access`."""
        from infrastructure.remote.access import check_access

        check_access(self._service, INTERNAL_PREFIX, tokens, no_internal_endpoints=NO_INTERNAL_ENDPOINTS)

    def close(self) -> None:
        self._service.close()

    def _user(self, response: httpx.Response) -> UserDTO:
        try:
            item = response.json()
            created_at = datetime.fromisoformat(item["created_at"])
            if created_at.utcoffset() is None:
                raise ValueError("created_at without a UTC offset")
            return UserDTO(
                id=uuid.UUID(item["id"]),
                email=str(item["email"]),
                name=str(item["name"]),
                role=str(item["role"]),
                created_at=created_at,
            )
        except (ValueError, KeyError, TypeError) as error:
            raise UnexpectedAnswer(self._service.name, response.status_code, "not a user") from error


def _problem(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
