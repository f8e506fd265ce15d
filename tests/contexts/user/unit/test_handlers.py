"""The user context's use cases on in-memory fakes: registration, login with hash upgrades,
looking users up, and the UserRegistered event published only once the user is stored."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from contexts.user.adapters.passwords import Argon2PasswordHasher
from contexts.user.api import UserNotFound
from contexts.user.application.handlers import (
    GetUser,
    GetUserHandler,
    IssueToken,
    IssueTokenHandler,
    ListUsers,
    ListUsersHandler,
    RegisterUser,
    RegisterUserHandler,
)
from contexts.user.domain.exceptions import EmailAlreadyRegistered, InvalidCredentials
from contexts.user.domain.model import Role
from contexts.user.events import UserRegistered
from infrastructure.auth.tokens import TokenService
from infrastructure.errors import Busy
from tests.fakes.common import CommitFailed
from tests.fakes.user import UserStore

CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1, "concurrency": 2, "wait_seconds": 30}
STRONGER = {"time_cost": 2, "memory_cost": 16, "parallelism": 1, "concurrency": 2, "wait_seconds": 30}


@pytest.fixture(scope="module")
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher(**CHEAP)


@pytest.fixture
def store() -> UserStore:
    return UserStore()


@pytest.fixture
def tokens() -> TokenService:
    return TokenService("x" * 32, ttl=timedelta(minutes=5))


@pytest.fixture
def register(store: UserStore, hasher: Argon2PasswordHasher) -> RegisterUserHandler:
    return RegisterUserHandler(uow=store, hasher=hasher)


@pytest.fixture
def login(store: UserStore, hasher: Argon2PasswordHasher, tokens: TokenService) -> IssueTokenHandler:
    return IssueTokenHandler(uow=store, hasher=hasher, tokens=tokens)


def stored_hash(store: UserStore, user_id: uuid.UUID) -> str:
    return store.users.rows[user_id].password_hash


# --- registration ----------------------------------------------------------------------------


def test_registering_stores_the_user_with_a_hashed_password(
    register: RegisterUserHandler, store: UserStore, hasher: Argon2PasswordHasher
) -> None:
    user = register(RegisterUser(email=" ann@example.com ", password="correct horse", name="Ann"))
    assert (user.email, user.name, user.role) == ("ann@example.com", "Ann", "customer")
    kept = store.users.rows[user.id]
    assert kept.password_hash != "correct horse"
    assert hasher.verify(kept.password_hash, "correct horse")
    assert GetUserHandler(uow=store)(GetUser(user.id)) == user


def test_registering_an_admin_keeps_the_role(register: RegisterUserHandler) -> None:
    user = register(RegisterUser(email="boss@example.com", password="pw", name="Boss", role=Role.ADMIN))
    assert user.role == "admin"


@pytest.mark.parametrize("again", ["ann@example.com", "ANN@Example.Com", "  Ann@example.com  "])
def test_registration_refuses_an_email_already_taken_whatever_its_case(
    register: RegisterUserHandler, store: UserStore, again: str
) -> None:
    register(RegisterUser(email="Ann@Example.com", password="pw", name="Ann"))
    with pytest.raises(EmailAlreadyRegistered):
        register(RegisterUser(email=again, password="other", name="Impostor"))
    assert len(store.users.rows) == 1
    assert len(store.publisher.of_type(UserRegistered)) == 1


def test_user_registered_is_published_after_the_user_is_committed(
    register: RegisterUserHandler, store: UserStore
) -> None:
    visible_at_publish: list[bool] = []

    def check(events: Sequence[Any]) -> None:
        with store(write=False) as uow:
            visible_at_publish.extend(uow.users.get(event.user_id) is not None for event in events)

    store.publisher.listeners.append(check)
    user = register(RegisterUser(email="ann@example.com", password="pw", name="Ann"))
    assert store.publisher.published == [UserRegistered(user_id=user.id, email="ann@example.com", name="Ann")]
    assert visible_at_publish == [True]


def test_a_failed_commit_stores_and_publishes_nothing(register: RegisterUserHandler, store: UserStore) -> None:
    def fail(_uow: Any) -> None:
        raise CommitFailed()

    store.before_commit = fail
    with pytest.raises(CommitFailed):
        register(RegisterUser(email="ann@example.com", password="pw", name="Ann"))
    assert store.users.rows == {}
    assert store.publisher.published == []


# --- login -----------------------------------------------------------------------------------


def test_login_issues_a_token_naming_the_user_and_role(
    register: RegisterUserHandler, login: IssueTokenHandler, tokens: TokenService
) -> None:
    user = register(RegisterUser(email="ann@example.com", password="correct horse", name="Ann"))
    issued = login(IssueToken(email="ANN@example.com", password="correct horse"))
    principal = tokens.verify(issued.access_token)
    assert (principal.user_id, principal.role) == (user.id, "customer")
    assert issued.expires_in == 300


@pytest.mark.parametrize(
    ("email", "password"),
    [("ann@example.com", "wrong horse"), ("ann@example.com", ""), ("nobody@example.com", "correct horse")],
)
def test_login_with_a_wrong_password_or_unknown_email_is_invalid_credentials(
    register: RegisterUserHandler, login: IssueTokenHandler, email: str, password: str
) -> None:
    register(RegisterUser(email="ann@example.com", password="correct horse", name="Ann"))
    with pytest.raises(InvalidCredentials) as raised:
        login(IssueToken(email=email, password=password))
    assert str(raised.value) == "the email or password is incorrect"


def test_login_upgrades_a_hash_made_with_outdated_parameters(
    store: UserStore, hasher: Argon2PasswordHasher, tokens: TokenService
) -> None:
    user = RegisterUserHandler(uow=store, hasher=hasher)(
        RegisterUser(email="ann@example.com", password="correct horse", name="Ann")
    )
    old_hash = stored_hash(store, user.id)
    stronger = Argon2PasswordHasher(**STRONGER)
    assert stronger.needs_rehash(old_hash)
    upgrading = IssueTokenHandler(uow=store, hasher=stronger, tokens=tokens)

    upgrading(IssueToken(email="ann@example.com", password="correct horse"))

    new_hash = stored_hash(store, user.id)
    assert new_hash != old_hash
    assert not stronger.needs_rehash(new_hash)
    assert stronger.verify(new_hash, "correct horse")
    commits = store.commits
    upgrading(IssueToken(email="ann@example.com", password="correct horse"))
    assert stored_hash(store, user.id) == new_hash
    assert store.commits == commits, "an up-to-date hash must not be rewritten"


def test_a_failed_login_never_upgrades_the_hash(
    store: UserStore, hasher: Argon2PasswordHasher, tokens: TokenService
) -> None:
    user = RegisterUserHandler(uow=store, hasher=hasher)(
        RegisterUser(email="ann@example.com", password="correct horse", name="Ann")
    )
    old_hash = stored_hash(store, user.id)
    upgrading = IssueTokenHandler(uow=store, hasher=Argon2PasswordHasher(**STRONGER), tokens=tokens)
    with pytest.raises(InvalidCredentials):
        upgrading(IssueToken(email="ann@example.com", password="wrong horse"))
    assert stored_hash(store, user.id) == old_hash


def test_login_with_current_parameters_writes_nothing(
    register: RegisterUserHandler, login: IssueTokenHandler, store: UserStore
) -> None:
    user = register(RegisterUser(email="ann@example.com", password="correct horse", name="Ann"))
    commits, old_hash = store.commits, stored_hash(store, user.id)
    login(IssueToken(email="ann@example.com", password="correct horse"))
    assert store.commits == commits
    assert stored_hash(store, user.id) == old_hash
    assert len(store.publisher.published) == 1


# --- lookup ----------------------------------------------------------------------------------


def test_get_user_of_an_unknown_id_is_user_not_found(store: UserStore) -> None:
    missing = uuid.uuid4()
    with pytest.raises(UserNotFound) as raised:
        GetUserHandler(uow=store)(GetUser(missing))
    assert raised.value.user_id == missing


class GatedHasher(Argon2PasswordHasher):
    """Hashes only once let through, to tell a start-up that waits for the decoy from one that does not."""

    def __init__(self) -> None:
        super().__init__(**CHEAP)
        self.gate = threading.Event()

    def hash(self, password: str) -> str:
        assert self.gate.wait(10), "the hash was never let through"
        return super().hash(password)


def test_the_decoy_hash_is_made_beside_the_start_up_and_waited_for_by_an_unknown_email(
    store: UserStore, tokens: TokenService
) -> None:
    hasher = GatedHasher()
    login = IssueTokenHandler(uow=store, hasher=hasher, tokens=tokens)  # returns with the hash still gated

    attempt = ThreadPoolExecutor(1).submit(login, IssueToken(email="nobody@example.com", password="whatever1"))
    time.sleep(0.2)
    assert not attempt.done()  # an unknown email costs a verification against the decoy, so it waits for it
    hasher.gate.set()
    with pytest.raises(InvalidCredentials):
        attempt.result(timeout=10)


class BusyOnceHasher(Argon2PasswordHasher):
    """Its first hash (the decoy's, at start-up) finds every hashing slot taken."""

    def __init__(self) -> None:
        super().__init__(**CHEAP)
        self.hashed = 0

    def hash(self, password: str) -> str:
        self.hashed += 1
        if self.hashed == 1:
            raise Busy("password hashing", retry_after_seconds=1)
        return super().hash(password)


def test_a_decoy_hash_that_failed_at_start_up_is_made_again_not_kept(store: UserStore, tokens: TokenService) -> None:
    hasher = BusyOnceHasher()
    login = IssueTokenHandler(uow=store, hasher=hasher, tokens=tokens)

    # Kept, the failure would answer every unknown email with a 503 where a known one gets a 401.
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            login(IssueToken(email="nobody@example.com", password="whatever1"))
    assert hasher.hashed == 2  # the failed one, then one made again by the first login, reused after


# --- the administrators' listing -------------------------------------------------------------


def test_an_email_prefix_is_folded_like_the_addresses_it_matches(
    register: RegisterUserHandler, store: UserStore
) -> None:
    for email in ("ada@example.com", "ADAM@example.com", "bob@example.com"):
        register(RegisterUser(email=email, password="long password", name="U"))
    list_users = ListUsersHandler(uow=store)

    # Fullwidth capitals and surrounding blanks fold to "ada" (NFKC and case folding, as keys do).
    page = list_users(ListUsers(limit=10, email_prefix=" ＡＤＡ "))

    assert [user.email for user in page.items] == ["ada@example.com", "ADAM@example.com"]
    assert (page.last_key, page.has_more) == ("adam@example.com", False)


def test_users_are_paged_by_email_key_after_the_last_one_shown(register: RegisterUserHandler, store: UserStore) -> None:
    for email in ("c@example.com", "A@example.com", "b@example.com"):
        register(RegisterUser(email=email, password="long password", name="U"))
    list_users = ListUsersHandler(uow=store)

    first = list_users(ListUsers(limit=2))
    second = list_users(ListUsers(limit=2, after=first.last_key))

    assert [user.email for user in first.items + second.items] == ["A@example.com", "b@example.com", "c@example.com"]
    assert (first.has_more, second.has_more) == (True, False)
