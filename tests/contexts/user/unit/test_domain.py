"""The user context's domain rules, as plain Python: registration and the email key."""

from __future__ import annotations

from datetime import datetime, timezone

import email_validator
import pytest

from contexts.user import events as user_events
from contexts.user.domain.model import Role, User, email_key

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_registering_a_user_trims_the_email_and_records_user_registered() -> None:
    user = User.register(email="  Ann@Example.COM ", name="Ann", password_hash="h", role=Role.CUSTOMER, now=NOW)
    assert user.email == "Ann@Example.COM"
    assert user.events == [user_events.UserRegistered(user_id=user.id, email="Ann@Example.COM", name="Ann")]


def test_email_case_and_surrounding_space_never_make_another_account() -> None:
    assert email_key(" Ann@Example.COM ") == email_key("ann@example.com")
    assert email_key("ann@example.com") != email_key("anne@example.com")


@pytest.mark.parametrize(
    ("email", "key"),
    [
        ("Ada@Straße.de", "ada@xn--strae-oqa.de"),  # not ada@strasse.de: IDNA 2008 keeps ß
        ("ada@σς.example", "ada@xn--3xab.example"),  # the final sigma, not σσ
        ("ａda@ＥＸＡＭＰＬＥ.com", "ada@example.com"),
        ("Straße@example.com", "strasse@example.com"),  # the local part is folded, though
    ],
    ids=repr,
)
def test_the_email_key_spells_a_domain_in_ascii_as_registration_stores_it(email: str, key: str) -> None:
    """Registration stores email_validator's ASCII form of the domain (IDNA 2008 with UTS 46);
    a key computed any other way finds no account at login."""
    assert email_key(email) == key
    local = email.rpartition("@")[0]
    assert email_key(f"{local}@{email_validator.validate_email(email, check_deliverability=False).ascii_domain}") == key
