"""GET /api/v1/admin/orders and /admin/users over the real app, on SQLite and PostgreSQL: only
administrators read them (401 without a token, 403 for a customer); filters combine; keyset
pages cover every matching row exactly once, in order, orders that share a time included; a bad
filter is a 400 naming it; and each listing is read as a range of an index in its own order, so
a page costs the same at a million rows (bench/scale.py measures it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Table, insert

from app.containers import ApplicationContainer, databases
from contexts.order.adapters.orm import OrderRow
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role
from tests.conftest import Shop
from tests.problems import assert_problem, invalid_fields
from tests.query_plans import plans_of

API = "/api/v1"
ADMIN_ORDERS = f"{API}/admin/orders"
ADMIN_USERS = f"{API}/admin/users"
ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]
NOW = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
ALICE, BOB = uuid.UUID(int=1), uuid.UUID(int=2)

Row = tuple[uuid.UUID, uuid.UUID, str, datetime]  # order id, user id, status, created_at


def store_orders(container: ApplicationContainer, rows: list[Row]) -> None:
    """Orders written directly: the times (and their ties) are the test's."""
    with databases(container)["order"].engine.begin() as connection:
        connection.execute(
            insert(ORDERS),
            [
                {"id": order_id, "user_id": user_id, "status": status, "currency": "USD", "created_at": created_at}
                for order_id, user_id, status, created_at in rows
            ],
        )


def newest_first(rows: list[Row]) -> list[str]:
    return [str(row[0]) for row in sorted(rows, key=lambda row: (row[3], row[0]), reverse=True)]


def every_page(client: FlaskClient, url: str, headers: dict[str, str], **query: Any) -> list[list[dict[str, Any]]]:
    """Follow ``next_cursor`` from the first page to the last; the pages' items."""
    pages = []
    cursor = None
    while True:
        response = client.get(url, headers=headers, query_string={**query, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.json
        body = response.json
        assert isinstance(body, dict)
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def ids(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [item["id"] for page in pages for item in page]


# --- who may read ------------------------------------------------------------------------


@pytest.mark.parametrize("url", [ADMIN_ORDERS, ADMIN_USERS])
def test_only_administrators_read_the_listings(client: FlaskClient, shop: Shop, url: str) -> None:
    assert_problem(client.get(url), 401, url)
    assert_problem(client.get(url, headers={"Authorization": "Bearer forged"}), 401, url)
    assert_problem(client.get(url, headers=shop.customer()), 403, url)
    assert client.get(url, headers=shop.admin()).status_code == 200


@pytest.mark.parametrize("url", [ADMIN_ORDERS, ADMIN_USERS])
def test_a_customer_with_a_bad_filter_is_still_told_403_first(client: FlaskClient, shop: Shop, url: str) -> None:
    assert_problem(client.get(url, headers=shop.customer(), query_string={"limit": 0, "role": "x"}), 403, url)


# --- orders ------------------------------------------------------------------------------


def test_an_administrator_sees_every_customers_orders_as_placed_through_the_api(
    client: FlaskClient, shop: Shop
) -> None:
    admin = shop.admin()
    product = shop.product(admin, price="2.50")
    placed = []
    for customer in (shop.customer(), shop.customer()):
        response = client.post(
            f"{API}/orders", json={"items": [{"product_id": product["id"], "quantity": 2}]}, headers=customer
        )
        assert response.status_code == 201
        placed.append(response.json)

    body = client.get(ADMIN_ORDERS, headers=admin).json

    assert isinstance(body, dict)
    assert body["items"] == list(reversed(placed)), "newest first, each as GET /orders/{id} shows it"
    assert body["next_cursor"] is None


def test_pages_cover_all_orders_sharing_times_once_each_newest_first(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    # Five times, five orders at each, ids in no particular order, two customers interleaved.
    rows = [(uuid.uuid4(), (ALICE, BOB)[n % 2], "placed", NOW + timedelta(seconds=n // 5)) for n in range(25)]
    store_orders(container, rows)

    pages = every_page(client, ADMIN_ORDERS, shop.admin(), limit=4)

    assert ids(pages) == newest_first(rows)
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 4, 1]


def test_filters_combine_and_hold_on_every_page(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    rows = [
        (uuid.uuid4(), (ALICE, BOB)[n % 2], ("placed", "cancelled", "placed")[n % 3], NOW + timedelta(minutes=n // 3))
        for n in range(60)
    ]
    store_orders(container, rows)
    admin = shop.admin()
    start, end = NOW + timedelta(minutes=4), NOW + timedelta(minutes=15)

    def expected(keep: Callable[[Row], bool]) -> list[str]:
        return newest_first([row for row in rows if keep(row)])

    assert ids(every_page(client, ADMIN_ORDERS, admin, limit=3, status="cancelled")) == expected(
        lambda row: row[2] == "cancelled"
    )
    assert ids(every_page(client, ADMIN_ORDERS, admin, limit=3, customer=str(BOB))) == expected(
        lambda row: row[1] == BOB
    )
    window = {"from": start.isoformat(), "to": end.isoformat()}
    assert ids(every_page(client, ADMIN_ORDERS, admin, limit=3, **window)) == expected(
        lambda row: start <= row[3] < end
    ), "placed in [from, to): from included, to excluded"
    assert ids(
        every_page(client, ADMIN_ORDERS, admin, limit=2, status="placed", customer=str(ALICE), **window)
    ) == expected(lambda row: row[2] == "placed" and row[1] == ALICE and start <= row[3] < end)


def test_times_with_any_offset_mean_the_same_instant(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    rows = [(uuid.uuid4(), ALICE, "placed", NOW + timedelta(hours=n)) for n in range(4)]
    store_orders(container, rows)

    body = client.get(
        ADMIN_ORDERS,
        headers=shop.admin(),
        query_string={"from": "2026-03-01T11:30:00+01:00", "to": "2026-03-01T12:30Z"},
    ).json

    assert isinstance(body, dict)
    assert [item["id"] for item in body["items"]] == [str(rows[2][0]), str(rows[1][0])]


def test_an_empty_window_is_an_empty_page(client: FlaskClient, shop: Shop, container: ApplicationContainer) -> None:
    store_orders(container, [(uuid.uuid4(), ALICE, "placed", NOW)])
    moment = NOW.isoformat()

    body = client.get(ADMIN_ORDERS, headers=shop.admin(), query_string={"from": moment, "to": moment}).json

    assert body == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "shipped"}, "status"),
        ({"status": ""}, "status"),
        ({"customer": "ada"}, "customer"),
        ({"from": "yesterday"}, "from"),
        ({"to": "0.5"}, "to"),  # not a Unix timestamp (schemathesis)
        ({"from": "1767225600"}, "from"),
        ({"from": "2026-03-01T09:30:00"}, "from"),  # no offset: which instant is meant?
        ({"to": "2026-02-30T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),  # no UTC equivalent
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_a_bad_order_filter_is_a_400_naming_it(
    client: FlaskClient, shop: Shop, query: dict[str, str], field: str
) -> None:
    assert invalid_fields(client.get(ADMIN_ORDERS, headers=shop.admin(), query_string=query)) == {field}


@pytest.mark.fresh_schemas  # plans of new tables, not of emptied ones (tests/schema_pool.py)
def test_each_order_filter_pages_as_a_range_of_an_index_in_the_listing_order(
    shop: Shop, container: ApplicationContainer
) -> None:
    """Before: no index led with ``created_at`` or ``status``, so every page read the whole table
    and sorted it (bench/README.md: 1M orders)."""
    from contexts.order.application import handlers
    from contexts.order.application.ports import OrderFilter, OrderKey
    from contexts.order.domain.model import OrderStatus

    store_orders(container, [(uuid.uuid4(), ALICE, "placed", NOW + timedelta(seconds=n)) for n in range(20)])
    list_all = container.order.list_all_orders()
    before = OrderKey(created_at=NOW + timedelta(seconds=10), order_id=uuid.uuid4())
    database = databases(container)["order"]
    expected_index = {
        "all": ("ix_order_orders_newest", OrderFilter()),
        "window": ("ix_order_orders_newest", OrderFilter(placed_from=NOW, placed_to=NOW + timedelta(seconds=15))),
        "window beyond the cursor": ("ix_order_orders_newest", OrderFilter(placed_to=NOW + timedelta(seconds=15))),
        "status": ("ix_order_orders_status_newest", OrderFilter(status=OrderStatus.CANCELLED)),
        "customer": ("ix_order_orders_user_newest", OrderFilter(user_id=ALICE)),
    }
    for what, (index, where) in expected_index.items():
        (_, listing), *_lines = plans_of(
            database.engine,
            lambda where=where: list_all(handlers.ListAllOrders(where=where, limit=5, before=before)),  # type: ignore[misc]
            planner={"enable_seqscan": "off", "enable_sort": "off"},
        )
        assert index in listing, (what, listing)
        assert "TEMP B-TREE" not in listing and "Sort" not in listing, (what, "sorted after reading", listing)
        if database.engine.dialect.name == "sqlite":
            # The page starts at the cursor, not at the top of a filter's range (a deep page read
            # every row between ``to`` and the cursor: 148 ms at 1M orders, bench/README.md).
            assert "(created_at,id)<(?,?)" in listing, (what, listing)


def test_a_window_whose_end_is_before_the_cursor_ends_the_page_there(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    rows = [(uuid.uuid4(), ALICE, "placed", NOW + timedelta(seconds=n)) for n in range(10)]
    store_orders(container, rows)
    admin = shop.admin()
    everything = every_page(client, ADMIN_ORDERS, admin, limit=3)
    cursor_after_third = client.get(ADMIN_ORDERS, headers=admin, query_string={"limit": 3}).json or {}

    window = {"to": (NOW + timedelta(seconds=4)).isoformat(), "cursor": cursor_after_third["next_cursor"]}
    page = client.get(ADMIN_ORDERS, headers=admin, query_string=window).json or {}

    assert ids(everything) == newest_first(rows)
    assert [item["id"] for item in page["items"]] == newest_first(rows[:4]), "the window's end still holds"


# --- users -------------------------------------------------------------------------------


def register(container: ApplicationContainer, email: str, role: Role = Role.CUSTOMER) -> str:
    """A user made through the application (no rate limit per address); their id."""
    user = container.user.register_user()(RegisterUser(email=email, password="long password", name="U", role=role))
    return str(user.id)


def emails(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [item["email"] for page in pages for item in page]


def test_users_are_listed_by_email_address_page_by_page(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    admin = shop.admin()
    addresses = [f"{name}{n}@example.com" for name in ("ada", "Bob", "carl", "ADAM") for n in range(3)]
    for address in addresses:
        register(container, address)

    pages = every_page(client, ADMIN_USERS, admin, limit=5)

    listed = [address for address in emails(pages) if not address.startswith("admin-")]
    assert listed == sorted(addresses, key=str.casefold)
    assert len(emails(pages)) == len(set(emails(pages))) == len(addresses) + 1, "the admin too, once"
    assert set(pages[0][0]) == {"id", "email", "name", "role", "created_at"}, "no password hash"


def test_an_email_prefix_matches_in_any_letter_case_and_combines_with_a_role(
    client: FlaskClient, shop: Shop, container: ApplicationContainer
) -> None:
    admin = shop.admin()
    admin_email = (client.get(f"{API}/users/me", headers=admin).json or {})["email"]
    for address in ("ada@example.com", "Adam@example.com", "adelaide@example.com", "bob@example.com", "ad@other.org"):
        register(container, address)
    register(container, "ADA.ops@example.com", Role.ADMIN)

    by_prefix = emails(every_page(client, ADMIN_USERS, admin, email_prefix="ADA", limit=1))
    admins = emails(every_page(client, ADMIN_USERS, admin, email_prefix="ad", role="admin", limit=1))
    customers = emails(every_page(client, ADMIN_USERS, admin, role="customer", limit=2))

    # Keys compare by code point: "ada.ops@" < "ada@" < "adam@" ('.' < '@' < 'm').
    assert by_prefix == ["ADA.ops@example.com", "ada@example.com", "Adam@example.com"]
    assert admins == ["ADA.ops@example.com", admin_email]
    assert customers == [
        "ad@other.org",
        "ada@example.com",
        "Adam@example.com",
        "adelaide@example.com",
        "bob@example.com",
    ]
    assert emails(every_page(client, ADMIN_USERS, admin, email_prefix="ada@EXAMPLE.")) == ["ada@example.com"]
    assert emails(every_page(client, ADMIN_USERS, admin, email_prefix="zed")) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"email_prefix": ""}, "email_prefix"),
        ({"email_prefix": "   "}, "email_prefix"),
        ({"email_prefix": "ad\x00a"}, "email_prefix"),
        ({"email_prefix": "ad\na"}, "email_prefix"),
        ({"email_prefix": "a" * 321}, "email_prefix"),
        ({"role": "superuser"}, "role"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "e30"}, "cursor"),  # {}
    ],
)
def test_a_bad_user_filter_is_a_400_naming_it(
    client: FlaskClient, shop: Shop, query: dict[str, str], field: str
) -> None:
    assert invalid_fields(client.get(ADMIN_USERS, headers=shop.admin(), query_string=query)) == {field}


@pytest.mark.fresh_schemas  # plans of new tables, not of emptied ones (tests/schema_pool.py)
def test_each_user_filter_pages_as_a_range_of_an_index_in_the_listing_order(
    shop: Shop, container: ApplicationContainer
) -> None:
    """Keys compared by the database's collation (PostgreSQL's default is not by code point)
    would make a prefix no range of the key index; the column's "C" collation makes it one."""
    from contexts.user.application import handlers

    for n in range(10):
        register(container, f"user{n}@example.com")
    list_users = container.user.list_users()
    database = databases(container)["user"]
    # The unique constraint's index: named by the constraint on PostgreSQL, by SQLite on SQLite.
    key_index = (
        "sqlite_autoindex_user_users_" if database.engine.dialect.name == "sqlite" else "uq_user_users_email_key"
    )
    expected_index = {
        "all": (key_index, handlers.ListUsers(limit=5, after="user3@example.com")),
        "prefix": (key_index, handlers.ListUsers(limit=5, email_prefix="user", after="user3@")),
        "role": ("ix_user_users_role_key", handlers.ListUsers(limit=5, role=Role.ADMIN, after="a")),
        "role and prefix": ("ix_user_users_role_key", handlers.ListUsers(limit=5, role=Role.ADMIN, email_prefix="u")),
    }
    for what, (index, query) in expected_index.items():
        (_, listing), *_ = plans_of(
            database.engine,
            lambda query=query: list_users(query),  # type: ignore[misc]
            planner={"enable_seqscan": "off", "enable_sort": "off"},
        )
        assert index in listing, (what, listing)
        assert "TEMP B-TREE" not in listing and "Sort" not in listing, (what, "sorted after reading", listing)
        if database.engine.dialect.name == "postgresql" and what != "role":
            assert "Index Cond" in listing and "email_key" in listing.split("Index Cond", 1)[1], (what, listing)
