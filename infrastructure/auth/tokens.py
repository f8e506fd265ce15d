"""Bearer tokens: issued by the user context, verified by every context without calling it.

A token names the user and the role, signed with a secret from configuration. Verification
needs nothing but the secrets, so a context split into its own service still authenticates
callers locally.

Hardening:

* the algorithm is pinned to HS256: ``none``, other HMAC sizes and asymmetric algorithms are
  refused whatever the token's header says;
* ``exp`` and ``nbf`` are required and enforced with a small leeway for clock skew;
* every token carries a key id (``kid`` header) derived from the secret that signed it, and
  verification picks the key by that id. Older secrets can stay accepted for verification
  while new tokens are signed with the current one, so the signing secret can be rotated
  without logging everyone out. A token without a ``kid``, or with an unknown one, is invalid.

A holder sends the same token with every request, so a verified token is remembered (by its
text, a bounded number of them) with its expiry: a repeat costs a dictionary look-up and a clock
comparison instead of decoding and an HMAC. Only tokens that verified are remembered, and the
expiry is checked on every use; the secrets a service accepts are fixed for its lifetime.

A signature proves who the token was issued to, not that they still exist or still have that
role. :class:`CurrentRoles` answers both from the user's record (asked in process or, where
the user context is served elsewhere, of the user service), remembered for a few seconds per
user so the hot path stays a dictionary look-up.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt

ALGORITHM = "HS256"
ADMIN = "admin"
LEEWAY = timedelta(seconds=5)
MIN_SECRET_LENGTH = 32
REQUIRED_CLAIMS = ("sub", "role", "exp", "nbf", "iat", "iss")
REMEMBERED_TOKENS = 4096
REMEMBERED_USERS = 4096


def key_id(secret: str) -> str:
    """The public name of a signing secret: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


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


@dataclass(frozen=True)
class TokenKeys:
    """The key ids of the secret a service signs tokens with and of those it accepts."""

    signing: str
    accepted: frozenset[str]

    def compatible_with(self, other: TokenKeys) -> bool:
        """Whether at least one of two services accepts the other's tokens. Both directions are
        wanted in the end, but a key rotation (one service restarted with the new secret and the
        old one as previous, the other not yet) passes through one direction only."""
        return self.signing in other.accepted or other.signing in self.accepted


class InvalidToken(Exception):
    """The token is malformed, expired, not yet valid, or not signed by a key we accept."""


class TokenService:
    """Signs with ``secret``; verifies tokens signed with it or with any of ``previous_secrets``."""

    def __init__(
        self,
        secret: str,
        *,
        ttl: timedelta,
        previous_secrets: Iterable[str] = (),
        issuer: str = "modular-shop",
    ) -> None:
        self._keys: dict[str, str] = {}
        for candidate in (secret, *previous_secrets):
            if len(candidate) < MIN_SECRET_LENGTH:
                raise ValueError(f"every token signing secret must be at least {MIN_SECRET_LENGTH} characters")
            kid = key_id(candidate)
            if self._keys.setdefault(kid, candidate) != candidate:
                raise ValueError("two token signing secrets share a key id; use another secret")
        self._secret = secret
        self._kid = key_id(secret)
        self._ttl = ttl
        self._issuer = issuer
        self._verified = functools.lru_cache(maxsize=REMEMBERED_TOKENS)(self._verify_signature)

    @property
    def key_id(self) -> str:
        """The ``kid`` of the tokens this service issues."""
        return self._kid

    @property
    def accepted_key_ids(self) -> frozenset[str]:
        """The ``kid`` of every secret whose tokens this service accepts (current and previous).
        Key ids are public (every token carries one), so services may compare them."""
        return frozenset(self._keys)

    def keys(self) -> TokenKeys:
        return TokenKeys(self._kid, self.accepted_key_ids)

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
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM, headers={"kid": self._kid})
        return IssuedToken(access_token=token, expires_in=int(self._ttl.total_seconds()))

    def verify(self, token: str) -> Principal:
        principal, expires_at = self._verified(token)
        if time.time() > expires_at + LEEWAY.total_seconds():
            raise InvalidToken("the token has expired")
        return principal

    def _verify_signature(self, token: str) -> tuple[Principal, float]:
        """The token's principal and expiry (POSIX seconds), if it verifies now; raises otherwise."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if not isinstance(kid, str) or kid not in self._keys:
                raise InvalidToken("the token's key id is missing or unknown")
            claims = jwt.decode(
                token,
                self._keys[kid],
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": list(REQUIRED_CLAIMS)},
                leeway=LEEWAY,
            )
            return Principal(user_id=uuid.UUID(claims["sub"]), role=str(claims["role"])), float(claims["exp"])
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise InvalidToken(str(error)) from error


RoleLookup = Callable[[uuid.UUID], str | None]


class CurrentRoles:
    """The role each user has now, or ``None`` once they do not exist, by ``lookup``.

    An answer (``None`` included) is remembered for ``ttl`` seconds, for at most ``maxsize``
    users (the least recently asked about are forgotten first): a demotion or a deleted user
    takes effect within ``ttl`` seconds, and a busy user costs one look-up per ``ttl``. Errors of
    ``lookup`` (the user database is down) are not remembered: they fail the request.
    """

    def __init__(
        self,
        lookup: RoleLookup,
        *,
        ttl: float,
        maxsize: int = REMEMBERED_USERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._maxsize = maxsize
        self._clock = clock
        self._known: OrderedDict[uuid.UUID, tuple[str | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def role_of(self, user_id: uuid.UUID) -> str | None:
        now = self._clock()
        with self._lock:
            remembered = self._known.get(user_id)
            if remembered is not None and now < remembered[1]:
                self._known.move_to_end(user_id)
                return remembered[0]
        role = self._lookup(user_id)  # outside the lock: it may query a database
        with self._lock:
            self._known[user_id] = (role, now + self._ttl)
            self._known.move_to_end(user_id)
            while len(self._known) > self._maxsize:
                self._known.popitem(last=False)
        return role
