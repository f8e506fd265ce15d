"""The token service accepts only what it would itself issue: HS256, signed by a key it knows
(picked by the token's ``kid``), within ``nbf``..``exp`` give or take a 5 s leeway, with every
required claim; and a rotated-out secret keeps verifying for as long as it is listed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest

from infrastructure.auth.tokens import LEEWAY, CurrentRoles, InvalidToken, Principal, TokenService, key_id

SECRET = "the current signing secret, long enough"
OLD_SECRET = "the previous signing secret, long enough"
OTHER_SECRET = "a secret this service never heard of!!!!"
TTL = timedelta(minutes=15)
USER = uuid.UUID("7b0c8f4e-52a4-4d5e-9a53-0f1c1a3b9e11")


def service(secret: str = SECRET, previous: tuple[str, ...] = ()) -> TokenService:
    return TokenService(secret, ttl=TTL, previous_secrets=previous)


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for ``USER``; a change to ``...`` removes the claim."""
    now = datetime.now(timezone.utc)
    values: dict[str, Any] = {
        "sub": str(USER),
        "role": "customer",
        "iss": "modular-shop",
        "iat": now,
        "nbf": now,
        "exp": now + TTL,
        **changes,
    }
    return {name: value for name, value in values.items() if value is not ...}


def signed(secret: str | None = SECRET, *, algorithm: str = "HS256", kid: Any = "derived", **changes: Any) -> str:
    headers = {} if kid is None else {"kid": key_id(secret or SECRET) if kid == "derived" else kid}
    return jwt.encode(claims(**changes), secret, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], secret: str = SECRET) -> str:
    """Valid claims under any ``header`` at all, signed with HS256 whatever the header says."""
    encoded_header = _b64(json.dumps(header).encode())
    payload = _b64(json.dumps(jwt.decode(signed(), options={"verify_signature": False})).encode())
    signature = _b64(hmac.new(secret.encode(), f"{encoded_header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{encoded_header}.{payload}.{signature}"


def test_an_issued_token_verifies_and_names_its_key() -> None:
    tokens = service()
    issued = tokens.issue(Principal(user_id=USER, role="admin"))

    header = jwt.get_unverified_header(issued.access_token)
    assert header["alg"] == "HS256"
    assert header["kid"] == key_id(SECRET) == tokens.key_id
    assert tokens.verify(issued.access_token) == Principal(user_id=USER, role="admin")
    assert issued.expires_in == TTL.total_seconds()


def test_the_key_id_is_derived_from_the_secret_alone() -> None:
    assert key_id(SECRET) == hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    assert key_id(SECRET) != key_id(OLD_SECRET)
    assert SECRET not in key_id(SECRET)


def test_a_token_crafted_like_ours_verifies() -> None:
    """The control for the rejections below: ``signed()`` and ``hand_signed()`` are acceptable as such."""
    assert service().verify(signed()) == Principal(user_id=USER, role="customer")
    assert service().verify(hand_signed({"alg": "HS256", "kid": key_id(SECRET)})).user_id == USER


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_refused_even_with_our_secret_and_kid(algorithm: str) -> None:
    long_secret = "a signing secret long enough for every HMAC size, HS512 included: 64+ bytes"
    with pytest.raises(InvalidToken):
        service(long_secret).verify(signed(long_secret, algorithm=algorithm))


def test_an_unsigned_token_is_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": key_id(SECRET)})
    with pytest.raises(InvalidToken):
        service().verify(token)


@pytest.mark.parametrize("claimed", ["RS256", "ES256", "PS256", "EdDSA", "none", "HS256 "])
def test_a_header_claiming_another_algorithm_over_an_hs256_signature_is_refused(claimed: str) -> None:
    """Algorithm confusion: the header's ``alg`` never chooses how the signature is checked."""
    with pytest.raises(InvalidToken):
        service().verify(hand_signed({"alg": claimed, "typ": "JWT", "kid": key_id(SECRET)}))


def test_expiry_is_enforced_beyond_a_small_leeway() -> None:
    now = datetime.now(timezone.utc)
    tokens = service()

    assert tokens.verify(signed(iat=now - TTL, nbf=now - TTL, exp=now - timedelta(seconds=2)))
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(signed(iat=now - TTL, nbf=now - TTL, exp=now - timedelta(seconds=30)))


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    """Verified tokens are remembered, but their expiry is checked on every use."""
    now = datetime.now(timezone.utc)
    tokens = service()
    token = signed(iat=now - TTL, nbf=now - TTL, exp=now - LEEWAY + timedelta(seconds=1))

    assert tokens.verify(token)
    time.sleep(1.5)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token)


def test_a_refused_token_is_checked_again_not_remembered() -> None:
    now = datetime.now(timezone.utc)
    tokens = service()
    token = signed(nbf=now + LEEWAY + timedelta(seconds=1))

    with pytest.raises(InvalidToken, match="not yet valid"):
        tokens.verify(token)
    time.sleep(1.5)
    assert tokens.verify(token).user_id == USER


def test_not_before_is_enforced_beyond_a_small_leeway() -> None:
    now = datetime.now(timezone.utc)
    tokens = service()

    assert tokens.verify(signed(nbf=now + timedelta(seconds=2)))
    with pytest.raises(InvalidToken, match="not yet valid"):
        tokens.verify(signed(nbf=now + timedelta(seconds=30)))


def test_a_token_both_not_yet_valid_and_expired_is_refused() -> None:
    now = datetime.now(timezone.utc)
    with pytest.raises(InvalidToken):
        service().verify(signed(nbf=now + timedelta(minutes=1), exp=now - timedelta(minutes=1)))


@pytest.mark.parametrize("claim", ["sub", "role", "exp", "nbf", "iat", "iss"])
def test_a_token_missing_a_required_claim_is_refused(claim: str) -> None:
    with pytest.raises(InvalidToken):
        removed: dict[str, Any] = {claim: ...}
        service().verify(signed(**removed))


@pytest.mark.parametrize(
    "changes",
    [{"iss": "someone-else"}, {"sub": "not-a-uuid"}, {"exp": "tomorrow"}],
    ids=["issuer", "subject", "expiry type"],
)
def test_a_token_with_a_wrong_claim_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        service().verify(signed(**changes))


@pytest.mark.parametrize(
    "kid",
    [None, "", "0123456789abcdef", 12345, ["x"], {"kid": "x"}],
    ids=["absent", "empty", "unknown", "number", "list", "object"],
)
def test_a_token_without_a_known_key_id_is_refused_even_if_correctly_signed(kid: Any) -> None:
    header = {"alg": "HS256"} if kid is None else {"alg": "HS256", "kid": kid}
    with pytest.raises(InvalidToken):
        service().verify(hand_signed(header))


def test_a_token_naming_one_key_but_signed_with_another_is_refused() -> None:
    tokens = service(previous=(OLD_SECRET,))
    with pytest.raises(InvalidToken):
        tokens.verify(signed(SECRET, kid=key_id(OLD_SECRET)))
    with pytest.raises(InvalidToken):
        tokens.verify(signed(OTHER_SECRET, kid=key_id(SECRET)))


def test_a_token_signed_with_an_unknown_secret_is_refused() -> None:
    with pytest.raises(InvalidToken):
        service().verify(signed(OTHER_SECRET))


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = service().issue(Principal(user_id=USER, role="customer")).access_token.split(".")
    forged = _b64(json.dumps(jwt.decode(signed(role="admin"), options={"verify_signature": False})).encode())
    with pytest.raises(InvalidToken):
        service().verify(f"{header}.{forged}.{signature}")


def test_rotation_keeps_old_tokens_valid_while_the_old_secret_is_listed() -> None:
    before = service(OLD_SECRET).issue(Principal(user_id=USER, role="customer")).access_token

    rotated = service(SECRET, previous=(OLD_SECRET,))
    assert rotated.verify(before).user_id == USER
    after = rotated.issue(Principal(user_id=USER, role="customer")).access_token
    assert jwt.get_unverified_header(after)["kid"] == key_id(SECRET)

    finished = service(SECRET)
    assert finished.verify(after).user_id == USER
    with pytest.raises(InvalidToken):
        finished.verify(before)


def test_a_previous_secret_only_verifies_it_never_signs() -> None:
    tokens = service(SECRET, previous=(OLD_SECRET,))
    issued = tokens.issue(Principal(user_id=USER, role="customer")).access_token
    with pytest.raises(InvalidToken):
        service(OLD_SECRET).verify(issued)


@pytest.mark.parametrize("previous", [(), ("too short",)], ids=["current", "previous"])
def test_short_secrets_are_refused_at_construction(previous: tuple[str, ...]) -> None:
    secret = "short" if not previous else SECRET
    with pytest.raises(ValueError, match="at least 32 characters"):
        service(secret, previous=previous)


def test_listing_the_current_secret_as_previous_too_is_harmless() -> None:
    tokens = service(SECRET, previous=(SECRET, OLD_SECRET))
    assert tokens.verify(signed(SECRET)).user_id == USER
    assert tokens.verify(signed(OLD_SECRET)).user_id == USER


# --- the user behind a token ---------------------------------------------------------------------


class Directory:
    """A user context as :class:`CurrentRoles` sees it: roles by id, counting the questions."""

    def __init__(self) -> None:
        self.roles: dict[uuid.UUID, str] = {}
        self.asked = 0

    def __call__(self, user_id: uuid.UUID) -> str | None:
        self.asked += 1
        return self.roles.get(user_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_role_is_remembered_for_the_ttl_then_asked_again() -> None:
    directory, clock = Directory(), Clock()
    directory.roles[USER] = "admin"
    roles = CurrentRoles(directory, ttl=30, clock=clock)

    assert [roles.role_of(USER) for _ in range(5)] == ["admin"] * 5
    assert directory.asked == 1

    directory.roles[USER] = "customer"  # demoted
    clock.now += 29.9
    assert roles.role_of(USER) == "admin"
    clock.now += 0.2
    assert roles.role_of(USER) == "customer"
    assert directory.asked == 2


def test_an_unknown_user_is_none_and_is_remembered_too() -> None:
    directory, clock = Directory(), Clock()
    roles = CurrentRoles(directory, ttl=30, clock=clock)

    assert roles.role_of(USER) is None and roles.role_of(USER) is None
    assert directory.asked == 1


def test_a_ttl_of_zero_asks_every_time() -> None:
    directory = Directory()
    directory.roles[USER] = "customer"
    roles = CurrentRoles(directory, ttl=0, clock=Clock())

    roles.role_of(USER)
    roles.role_of(USER)
    assert directory.asked == 2


def test_at_most_maxsize_users_are_remembered_the_least_recently_asked_go_first() -> None:
    directory, clock = Directory(), Clock()
    users = [uuid.uuid4() for _ in range(3)]
    roles = CurrentRoles(directory, ttl=30, maxsize=2, clock=clock)

    roles.role_of(users[0])
    roles.role_of(users[1])
    roles.role_of(users[0])  # users[1] is now the least recently asked about
    roles.role_of(users[2])
    assert directory.asked == 3

    roles.role_of(users[0])
    assert directory.asked == 3
    roles.role_of(users[1])
    assert directory.asked == 4


def test_a_failing_lookup_is_not_remembered() -> None:
    calls = 0

    def down(user_id: uuid.UUID) -> str | None:
        nonlocal calls
        calls += 1
        raise ConnectionError("the user database is down")

    roles = CurrentRoles(down, ttl=30, clock=Clock())
    for _ in range(2):
        with pytest.raises(ConnectionError):
            roles.role_of(USER)
    assert calls == 2
