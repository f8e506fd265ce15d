"""Catalog search through its index (``contexts.product.adapters.search``), on SQLite and PostgreSQL.

What ``q`` matches must not change with the index: a case-folded substring of the name or the
sku, ``%`` ``_`` and FTS syntax taken literally, terms too short for trigrams still found, and
the index following every insert and rename. And the index must be what a search uses: an
FTS5 query then rowid look-ups on SQLite, the trigram indexes on PostgreSQL (before, every
search read every product: 2.5 s for a rare term at a million products).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

import contexts.product
from contexts.product.adapters import search
from contexts.product.adapters.repository import SqlAlchemyProductRepository
from contexts.product.domain import model
from infrastructure.db.database import Database
from infrastructure.db.migrations import upgrade
from tests.conftest import Backend, Shop
from tests.query_plans import plans_of

API = "/api/v1"
MIGRATIONS = Path(str(contexts.product.__file__)).parent / "migrations"
VERSION_TABLE = "product_alembic_version"


@pytest.fixture
def admin(shop: Shop) -> dict[str, str]:
    return shop.admin()


def found(client: FlaskClient, q: str, *, limit: int = 100) -> list[str]:
    """The skus ``q`` finds, every page followed, in the order served."""
    skus: list[str] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"q": q, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{API}/products", query_string=query)
        assert response.status_code == 200, response.json
        body: dict[str, Any] = response.json or {}
        skus += [item["sku"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return skus


def test_a_term_is_found_inside_words_across_spaces_and_in_skus(
    client: FlaskClient, shop: Shop, admin: dict[str, str]
) -> None:
    shop.product(admin, sku="A-1", name="Blue Teapot")
    shop.product(admin, sku="TEAPOT-XL", name="Large vessel")
    shop.product(admin, sku="B-2", name="Coffee cup")

    assert found(client, "ue tea") == ["A-1"]
    assert found(client, "EAPOT") == ["A-1", "TEAPOT-XL"]
    assert found(client, "pot-x") == ["TEAPOT-XL"]
    assert found(client, "teapots") == []


def test_case_folds_beyond_ascii_on_both_sides(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    shop.product(admin, sku="S-1", name="Große Straße")
    shop.product(admin, sku="S-2", name="\u00c9CLAIR")  # ÉCLAIR

    for q in ("STRASSE", "straße", "große str", "GROSSE"):
        assert found(client, q) == ["S-1"], q
    assert found(client, "éclair") == ["S-2"]
    assert found(client, "ß") == ["S-1"]  # "ss": two characters, below the trigram index


def test_search_syntax_and_wildcards_are_plain_characters(
    client: FlaskClient, shop: Shop, admin: dict[str, str]
) -> None:
    shop.product(admin, sku="Q-1", name='The "best" mug')
    shop.product(admin, sku="Q-2", name="mug AND cup OR NEAR(kettle) name_folded:x")
    shop.product(admin, sku="Q-3", name="100% cotton mug_stand")
    shop.product(admin, sku="Q-4", name="1000 cotton mugXstand")

    assert found(client, '"best"') == ["Q-1"]
    assert found(client, '"best" mug') == ["Q-1"]
    assert found(client, "AND cup") == ["Q-2"]
    assert found(client, "near(") == ["Q-2"]
    assert found(client, "name_folded:") == ["Q-2"]
    assert found(client, "name_folded:mug") == []
    assert found(client, "mug*") == []
    assert found(client, "0% c") == ["Q-3"]
    assert found(client, "mug_s") == ["Q-3"]
    assert found(client, "g\\s") == []


@pytest.mark.parametrize("q", ["m", "mu", "Mu", "%", "_", "g_"])
def test_terms_shorter_than_a_trigram_are_still_found(
    client: FlaskClient, shop: Shop, admin: dict[str, str], q: str
) -> None:
    shop.product(admin, sku="M-1", name="mug")
    shop.product(admin, sku="M-2", name="big_mug 50%")
    shop.product(admin, sku="X-9", name="cup")
    expected = {"m": ["M-1", "M-2"], "mu": ["M-1", "M-2"], "%": ["M-2"], "_": ["M-2"], "g_": ["M-2"]}

    assert found(client, q) == expected[q.casefold()]


def test_a_renamed_product_is_found_by_its_new_name_only(
    client: FlaskClient, shop: Shop, admin: dict[str, str]
) -> None:
    product = shop.product(admin, sku="R-1", name="Old kettle")
    shop.product(admin, sku="R-2", name="Another kettle")

    response = client.patch(f"{API}/products/{product['id']}", json={"name": "Shiny samovar"}, headers=admin)
    assert response.status_code == 200, response.json

    assert found(client, "samovar") == ["R-1"]
    assert found(client, "old ket") == []
    assert found(client, "kettle") == ["R-2"]


@pytest.mark.parametrize("candidates", [0, 5, 1_000], ids=["always-walk", "walk-or-sort", "always-sort"])
def test_sorting_candidates_and_walking_by_sku_answer_alike(
    client: FlaskClient, shop: Shop, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch, candidates: int
) -> None:
    """On SQLite a term with more matches than ``candidates_limit`` allows is answered by reading
    products in sku order; with fewer, by sorting the index's matches: the pages must not differ."""
    for number in range(12):
        shop.product(admin, sku=f"P-{number:02d}", name=f"{'mug' if number % 3 else 'cup'} {number}")
    monkeypatch.setattr(search, "candidates_limit", lambda catalog_size, limit: candidates)

    assert found(client, "mug", limit=3) == [f"P-{n:02d}" for n in range(12) if n % 3]
    assert found(client, "cup", limit=2) == ["P-00", "P-03", "P-06", "P-09"]


# --- the index is what a search uses -------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path, backend: Backend) -> Iterator[Database]:
    database = backend.database("product", tmp_path)
    yield database
    database.dispose()


def add_products(database: Database, *names: str) -> None:
    with database.session(write=True) as session:
        products = SqlAlchemyProductRepository(session, [])
        for name in names:
            products.add(
                model.Product.create(
                    sku=f"SKU-{uuid.uuid4().hex[:8]}",
                    name=name,
                    description=None,
                    price=Decimal("1.00"),
                    currency="USD",
                    now=datetime.now(timezone.utc),
                )
            )
        session.commit()


def listed(database: Database, query: str) -> list[str]:
    with database.session(write=False) as session:
        products = SqlAlchemyProductRepository(session, []).list(limit=20, after_sku=None, query=query)
        return [product.name for product in products]


@pytest.mark.parametrize(
    ("catalog_size", "limit", "expected"),
    [(0, 21, 200), (1_000, 21, 204), (1_000_000, 21, 6_480), (1_000_000, 100, 14_142), (10**9, 21, 20_000)],
)
def test_the_candidates_sorted_grow_with_the_root_of_the_catalog(catalog_size: int, limit: int, expected: int) -> None:
    assert search.candidates_limit(catalog_size, limit) == expected


def test_a_search_reads_the_index_not_the_catalog(database: Database) -> None:
    upgrade(database, MIGRATIONS, VERSION_TABLE)
    add_products(database, "Blue teapot", "Red kettle", "Green mug")

    def search_teapot() -> None:
        assert listed(database, "teapot") == ["Blue teapot"]

    # PostgreSQL: a few rows are cheapest read in full; the question is whether the index can serve.
    plans = "\n".join(
        planned.plan
        for planned in plans_of(
            database.engine, search_teapot, planner={"enable_seqscan": "off", "enable_indexscan": "off"}
        )
    )

    if database.engine.dialect.name == "sqlite":
        assert "SCAN product_search VIRTUAL TABLE" in plans, plans
        assert "SEARCH product_products USING INTEGER PRIMARY KEY (rowid=?)" in plans, plans
        assert "SCAN product_products" not in plans, plans
    else:
        assert "Bitmap Index Scan on ix_product_products_name_folded_trgm" in plans, plans
        assert "Bitmap Index Scan on ix_product_products_sku_trgm" in plans, plans


def test_products_there_before_the_index_are_found_through_it(database: Database) -> None:
    upgrade(database, MIGRATIONS, VERSION_TABLE, "product_0003")
    add_products(database, "Blue teapot", "Red kettle")

    upgrade(database, MIGRATIONS, VERSION_TABLE)

    assert listed(database, "teapot") == ["Blue teapot"]
    if database.engine.dialect.name == "sqlite":
        with database.engine.connect() as connection:
            indexed = connection.exec_driver_sql(
                f"SELECT count(*) FROM {search.SEARCH_TABLE} WHERE {search.SEARCH_TABLE} MATCH '\"kettle\"'"
            ).scalar()
        assert indexed == 1
