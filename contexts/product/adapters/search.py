"""Catalog search through an index: ``q`` found in a name or a sku without reading every product.

What matches is unchanged: ``q``, case-folded by Python, is a substring of the case-folded name
(``name_folded``) or of the lower-cased sku; ``%``, ``_`` and ``\\`` are plain characters; the
results are ordered and paged by sku. The final filter is always that ``LIKE`` condition, so
an index only ever narrows the rows it is applied to and can never change the answer.

- **PostgreSQL**: GIN trigram indexes (``pg_trgm``) on ``name_folded`` and ``lower(sku)`` serve
  ``LIKE '%q%'`` directly. The planner chooses per query: the trigram indexes for a rare term,
  the sku index (read in order, stopping at the page's end) for a frequent one.
- **SQLite**: an FTS5 table with the trigram tokenizer, :data:`SEARCH_TABLE`, indexes
  ``name_folded`` and ``sku`` of ``product_products`` (external content: it stores no copy of
  the text, only the index, keyed by the products' rowid), kept in step by triggers on every
  insert, update and delete. SQLite's planner cannot weigh FTS against the sku order, so this
  module does (see :func:`candidates_limit`): it asks the index for at most *m* matching rows;
  if there are no more, the page is chosen among them (fetched by rowid, sorted by sku); if
  there are more, the term is frequent and reading products in sku order meets a page of
  matches soon, as before.

A trigram index cannot find a term shorter than three characters: such a ``q`` (one or two
characters after case folding) is answered by reading products in sku order and checking each,
as before any index existed. Correct, and quick when the term is common (which short terms
mostly are); a rare one- or two-character term reads the whole catalog.

The index lives outside the context's SQLAlchemy metadata (a virtual table and triggers on
SQLite, operator-class indexes on PostgreSQL): :func:`modelled` keeps Alembic's comparison of
metadata and database from reporting it. A future migration that rebuilds ``product_products``
on SQLite (batch mode: copy, drop, rename) drops the triggers and may renumber rowids: it must
recreate the triggers and run ``INSERT INTO product_search(product_search) VALUES('rebuild')``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, column, func, literal_column, or_, text
from sqlalchemy.orm import Session

from contexts.product.adapters.orm import ProductRow

if TYPE_CHECKING:
    from alembic.runtime.environment import NameFilterParentNames, NameFilterType

SEARCH_TABLE = "product_search"
TRIGRAM_INDEXES = ("ix_product_products_name_folded_trgm", "ix_product_products_sku_trgm")
# A trigram index finds terms of at least this many characters.
MIN_INDEXED_LENGTH = 3
# Measured at a million products (SQLite 3.40): fetching a candidate by rowid to sort it costs
# about half of reading one product in sku order and checking it (7 vs 12 µs).
CANDIDATE_COST_RATIO = 0.5
# Bounds of the number of candidates sorted, whatever the catalog's size.
MIN_CANDIDATES, MAX_CANDIDATES = 200, 20_000


def matching(session: Session, statement: Select[Any], needle: str, *, limit: int) -> Select[Any]:
    """``statement`` (a page of ``limit`` products by sku) narrowed to those whose name or sku
    contains ``needle`` (already case-folded), with the search index's help where there is one."""
    statement = statement.where(
        or_(
            ProductRow.name_folded.contains(needle, autoescape=True),
            func.lower(ProductRow.sku).contains(needle, autoescape=True),
        )
    )
    if session.get_bind().dialect.name != "sqlite" or len(needle) < MIN_INDEXED_LENGTH:
        return statement
    most = candidates_limit(session.scalar(text("SELECT max(rowid) FROM product_products")) or 0, limit)
    phrase = _phrase(needle)
    # Counted inside SQLite, and only up to one past the threshold: a frequent term stops early.
    counted = text(
        f"SELECT count(*) FROM (SELECT 1 FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :phrase LIMIT :most)"
    )
    if (session.scalar(counted, {"phrase": phrase, "most": most + 1}) or 0) > most:
        return statement
    matches = text(f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :phrase").bindparams(phrase=phrase)
    # ``+sku`` keeps SQLite from reading the sku index in order and testing each rowid against
    # the matches: the few matches are fetched by rowid and sorted instead.
    return (
        statement.where(literal_column("product_products.rowid").in_(matches.columns(column("rowid"))))
        .order_by(None)
        .order_by(literal_column("+product_products.sku"))
    )


def candidates_limit(catalog_size: int, limit: int) -> int:
    """How many matches to sort at most, for a page of ``limit`` in a catalog of ``catalog_size``
    (``max(rowid)`` of the products: rowids only grow, and it costs one index step to read).

    With *k* matches spread over *N* products, sorting them costs about ``ratio × k`` product
    reads, and walking in sku order about ``limit × N / k`` until a page is full. Sorting when
    *k* ≤ ``√(limit × N / ratio)`` and walking otherwise caps the cost at ``√(ratio × limit ×
    N)`` reads, reached by a term just at the threshold: ~3,200 for a page of 21 among a million
    products (≈6,500 matches), against a million for every term without the index. Rare and
    frequent terms stay far below that; terms in roughly 0.1–3% of the catalog come near it.
    """
    best = math.isqrt(int(limit * catalog_size / CANDIDATE_COST_RATIO))
    return max(MIN_CANDIDATES, min(MAX_CANDIDATES, best))


def _phrase(needle: str) -> str:
    """``needle`` as an FTS5 phrase: a string in double quotes (inner ones doubled) is taken
    literally and, with the trigram tokenizer, matches where it occurs as a substring."""
    return '"' + needle.replace('"', '""') + '"'


def modelled(name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames) -> bool:
    """Alembic's ``include_name``: False for the search index's tables (the FTS5 table and its
    shadow tables) and indexes, which the metadata does not describe."""
    if type_ == "table" and name is not None:
        return name != SEARCH_TABLE and not name.startswith(f"{SEARCH_TABLE}_")
    if type_ == "index":
        return name not in TRIGRAM_INDEXES
    return True
