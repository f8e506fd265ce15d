"""Every implementation of the published UserApi keeps its contract: a user by id as a
UserDTO, and UserNotFound for an id nobody has."""

from __future__ import annotations

import uuid

import pytest

from contexts.user.api import UserDTO, UserNotFound
from tests.contexts.conftest import UserHarness


def test_get_user_returns_the_user_as_a_dto(user_harness: UserHarness) -> None:
    customer = user_harness.add_user(email="ann@example.com", name="Ann")
    user = user_harness.api.get_user(customer)
    assert isinstance(user, UserDTO)
    assert (user.id, user.email, user.name, user.role) == (customer, "ann@example.com", "Ann", "customer")
    assert user.created_at.utcoffset() is not None, "created_at must be an aware time"


def test_get_user_tells_roles_apart(user_harness: UserHarness) -> None:
    admin, customer = user_harness.add_user(admin=True), user_harness.add_user()
    assert [user_harness.api.get_user(user_id).role for user_id in (admin, customer)] == ["admin", "customer"]


def test_get_user_of_an_unknown_id_is_user_not_found(user_harness: UserHarness) -> None:
    user_harness.add_user()
    missing = uuid.uuid4()
    with pytest.raises(UserNotFound) as raised:
        user_harness.api.get_user(missing)
    assert raised.value.user_id == missing
