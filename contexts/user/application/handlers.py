"""The user context's use cases, one verb each."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone

from contexts.user.api import UserDTO, UserNotFound
from contexts.user.application.ports import PasswordHasher, UnitOfWorkFactory, UserFilter
from contexts.user.domain import exceptions, model
from infrastructure.auth.tokens import IssuedToken, Principal, TokenService


@dataclass(frozen=True)
class RegisterUser:
    email: str
    password: str
    name: str
    role: model.Role = model.Role.CUSTOMER


@dataclass(frozen=True)
class IssueToken:
    email: str
    password: str


@dataclass(frozen=True)
class GetUser:
    user_id: uuid.UUID


@dataclass(frozen=True)
class ListUsers:
    """An administrator's view of the accounts; ``email_prefix`` as typed, any letter case."""

    limit: int
    email_prefix: str | None = None
    role: model.Role | None = None
    after: str | None = None  # the email key of the last user already shown


@dataclass(frozen=True)
class UserPage:
    items: list[UserDTO]
    last_key: str | None
    has_more: bool


def to_dto(user: model.User) -> UserDTO:
    return UserDTO(id=user.id, email=user.email, name=user.name, role=user.role.value, created_at=user.created_at)


class RegisterUserHandler:
    def __init__(self, *, uow: UnitOfWorkFactory, hasher: PasswordHasher) -> None:
        self._uow = uow
        self._hasher = hasher

    def __call__(self, command: RegisterUser) -> UserDTO:
        # Hash outside the transaction: it is the slow part and needs no lock.
        password_hash = self._hasher.hash(command.password)
        with self._uow() as uow:
            if uow.users.get_by_email(command.email) is not None:
                raise exceptions.EmailAlreadyRegistered(command.email)
            user = model.User.register(
                email=command.email,
                name=command.name,
                password_hash=password_hash,
                role=command.role,
                now=datetime.now(timezone.utc),
            )
            uow.users.add(user)
            uow.commit()
        return to_dto(user)


class IssueTokenHandler:
    """Log in: check the password, upgrade its hash if the parameters changed, issue a token."""

    def __init__(self, *, uow: UnitOfWorkFactory, hasher: PasswordHasher, tokens: TokenService) -> None:
        self._uow = uow
        self._hasher = hasher
        self._tokens = tokens
        # Verified against when the email is unknown, so both failures cost the same time. Made
        # beside the start-up, which it would otherwise hold up by a whole argon2 hash.
        self._decoy_hash = _Decoy(lambda: hasher.hash(uuid.uuid4().hex))

    def __call__(self, command: IssueToken) -> IssuedToken:
        with self._uow(write=False) as uow:
            user = uow.users.get_by_email(command.email)
        if user is None:
            self._hasher.verify(self._decoy_hash.get(), command.password)
            raise exceptions.InvalidCredentials()
        if not self._hasher.verify(user.password_hash, command.password):
            raise exceptions.InvalidCredentials()
        if self._hasher.needs_rehash(user.password_hash):
            self._upgrade_hash(user.id, command.password)
        return self._tokens.issue(Principal(user_id=user.id, role=user.role.value))

    def _upgrade_hash(self, user_id: uuid.UUID, password: str) -> None:
        password_hash = self._hasher.hash(password)
        with self._uow() as uow:
            user = uow.users.get(user_id)
            if user is not None:
                user.change_password_hash(password_hash)
                uow.users.save(user)
                uow.commit()


def _in_background(make: Callable[[], str], *, name: str) -> Future[str]:
    """``make()`` in a thread of its own; its result (or error) when asked for."""
    future: Future[str] = Future()

    def run() -> None:
        try:
            future.set_result(make())
        except BaseException as error:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class _Decoy:
    """The decoy hash: made in the background at start-up; if that failed (``Busy`` while the
    hashing slots were taken, ``MemoryError``), made again by the next login that needs it.

    A failure kept for good would answer every unknown email with it (a 503) while known ones
    get a 401: an oracle telling which addresses have accounts."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._made = _in_background(make, name="decoy-password-hash")

    def get(self) -> str:
        made = self._made
        try:
            return made.result()
        except Exception:  # noqa: BLE001 - whatever kept the decoy from being made, it is made again
            with self._lock:
                if self._made is made:  # no other login has made it again meanwhile
                    remade: Future[str] = Future()
                    remade.set_result(self._make())  # raises to this login only; the next one tries again
                    self._made = remade
            return self._made.result()


class GetUserHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: GetUser) -> UserDTO:
        with self._uow(write=False) as uow:
            user = uow.users.get(query.user_id)
            if user is None:
                raise UserNotFound(query.user_id)
            return to_dto(user)


class ListUsersHandler:
    """Every account, by email address, for administrators (the HTTP layer checks who asks)."""

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: ListUsers) -> UserPage:
        prefix = model.email_key_prefix(query.email_prefix) if query.email_prefix is not None else None
        with self._uow(write=False) as uow:
            users = uow.users.list_matching(
                UserFilter(key_prefix=prefix, role=query.role), limit=query.limit + 1, after=query.after
            )
        page = users[: query.limit]
        return UserPage(
            items=[to_dto(user) for user in page],
            last_key=page[-1].email_key if page else None,
            has_more=len(users) > query.limit,
        )
