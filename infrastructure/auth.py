"""Bearer tokens: issued by the user context, verified by every context without calling it.

A token names the user and the role, signed with a secret from configuration. Verification
needs nothing but the secret, so a context split into its own service still authenticates
callers locally.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt

ALGORITHM = "HS256"
ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class InvalidToken(Exception):
    """The token is malformed, expired, or not signed by us."""


class TokenService:
    def __init__(self, secret: str, *, ttl: timedelta, issuer: str = "modular-shop") -> None:
        if len(secret) < 32:
            raise ValueError("the token signing secret must be at least 32 characters")
        self._secret = secret
        self._ttl = ttl
        self._issuer = issuer

    def issue(self, principal: Principal) -> IssuedToken:
        now = datetime.now(timezone.utc)
        claims = {
            "sub": str(principal.user_id),
            "role": principal.role,
            "iss": self._issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedToken(access_token=token, expires_in=int(self._ttl.total_seconds()))

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["sub", "role", "exp", "iat", "iss"]},
                leeway=timedelta(seconds=5),
            )
            return Principal(user_id=uuid.UUID(claims["sub"]), role=str(claims["role"]))
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise InvalidToken(str(error)) from error
