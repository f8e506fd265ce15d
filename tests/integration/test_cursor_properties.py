"""Every cursor parameter of every list endpoint, fed arbitrary bytes and arbitrary JSON: the
answer is a page (200) or a 400 problem naming ``cursor``, never a 500 — on SQLite and PostgreSQL.

A cursor is base64url-encoded JSON the client hands back; before the shared ``CursorKey`` models
a lone surrogate, a NUL (PostgreSQL), ``{"sku": null}`` (read as "None") or a time in year 1
east of Greenwich reached the database and came back as a 500.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Shop
from tests.problems import assert_problem

API = "/api/v1"


@dataclass(frozen=True)
class Listing:
    path: str
    keys: tuple[str, ...]  # the members of the cursors it hands out
    caller: Callable[[Shop], dict[str, str]]


# Every endpoint that takes a cursor (tests/integration/test_cursor_properties.py is the list
# to extend when another one does).
LISTINGS = {
    "products": Listing(f"{API}/products", ("sku",), lambda shop: {}),
    "orders": Listing(f"{API}/orders", ("created_at", "id"), lambda shop: shop.customer()),
    "audit-log": Listing(f"{API}/audit-log", ("position",), lambda shop: shop.admin()),
    "admin/orders": Listing(f"{API}/admin/orders", ("created_at", "id"), lambda shop: shop.admin()),
    "admin/users": Listing(f"{API}/admin/users", ("email_key",), lambda shop: shop.admin()),
}


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _json_text(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates as \ud800 escapes, as an attacker would send them
    return json.dumps(value, ensure_ascii=True).encode()


TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec=None, exclude_categories=())),  # surrogates and NULs too
    st.datetimes(timezones=st.timezones() | st.just(timezone.utc)).map(lambda moment: moment.isoformat()),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.uuids().map(str),
    st.sampled_from(
        ["\x00", "\ud800", "MUG-001\x00", "None", "", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6
)


def _shaped(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the cursor's own members (some left out, some added): the ones that get
    furthest into the code."""
    return st.fixed_dictionaries({}, optional={key: JSON for key in keys}).flatmap(
        lambda shaped: st.dictionaries(st.sampled_from(("extra", *keys)), JSON, max_size=1).map(
            lambda extra: {**shaped, **extra}
        )
    )


def _cursors(keys: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=80),  # not even base64
        st.binary(max_size=120).map(_encode),  # base64 of anything
        JSON.map(_json_text).map(_encode),  # base64 of any JSON
        _shaped(keys).map(_json_text).map(_encode),
        _shaped(keys)
        .map(lambda key: json.dumps(key, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        .map(_encode),  # raw UTF-8 (and unpaired surrogates encoded as if they were characters)
    )


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("name", list(LISTINGS))
def test_any_cursor_is_a_page_or_a_400_never_a_500(client: FlaskClient, shop: Shop, name: str) -> None:
    listing = LISTINGS[name]
    headers = listing.caller(shop)

    @PROPERTY
    @given(cursor=_cursors(listing.keys))
    def check(cursor: str) -> None:
        response = client.get(listing.path, query_string={"cursor": cursor}, headers=headers)
        if response.status_code != 200:
            problem = assert_problem(response, 400, listing.path)
            assert [error["field"] for error in problem["errors"]] == ["cursor"], problem

    check()


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("products", {"sku": "\ud800"}),
        ("products", {"sku": "MUG\x00"}),
        ("products", {"sku": None}),
        ("products", {"sku": 7}),
        ("orders", {"created_at": "0001-01-01T00:00:00+01:00", "id": "00000000-0000-0000-0000-000000000000"}),
        ("orders", {"created_at": "2026-01-01T00:00:00+00:00", "id": "00000000-0000-0000-0000-000000000000", "x": 1}),
        ("audit-log", {"position": 3.0}),
    ],
)
def test_the_cursors_that_were_500s_are_400s(client: FlaskClient, shop: Shop, name: str, key: dict[str, Any]) -> None:
    listing = LISTINGS[name]
    response = client.get(listing.path, query_string={"cursor": _encode(_json_text(key))}, headers=listing.caller(shop))
    assert_problem(response, 400, listing.path)
