"""The recommendation store on a real, migrated SQLite database: profiles created once, counts
added by upserts over several orders (also by concurrent writers), nothing kept without a
commit, the history the ranking reads, and the same upserts rendered for PostgreSQL.

Redelivery is not tested here: the inbox only acts for a unit of work made for a delivery (see
tests/contexts/recommendation/integration/test_http.py)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Dialect, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite

import contexts.recommendation
from contexts.order.events import OrderedLine, OrderPlaced
from contexts.recommendation.adapters import orm
from contexts.recommendation.adapters.repository import PAIRS, POPULARITY, PROFILES, PURCHASES, counting_upsert
from contexts.recommendation.adapters.unit_of_work import SqlAlchemyRecommendationUnitOfWork
from contexts.recommendation.application.handlers import RecordPurchaseHandler
from contexts.recommendation.application.subscribers import when_order_placed_record_purchase
from contexts.recommendation.domain.model import MAX_RECOMMENDATIONS, Basket, History, Reason, recommend
from infrastructure.db.database import Database
from infrastructure.db.migrations import downgrade, upgrade
from infrastructure.events.delivery import Delivery
from infrastructure.events.inbox import Inbox
from tests.conftest import Backend
from tests.query_plans import plans_of

MIGRATIONS = Path(str(contexts.recommendation.__file__)).parent / "migrations"
VERSION_TABLE = "recommendation_alembic_version"
NOW = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)
ALICE, BOB, CAROL = (uuid.UUID(int=1000 + n) for n in range(3))
DIALECTS: tuple[Dialect, ...] = (sqlite.dialect(), postgresql.dialect())  # type: ignore[no-untyped-call]


def p(number: int) -> uuid.UUID:
    return uuid.UUID(int=number)


@pytest.fixture
def database(tmp_path: Path, backend: Backend) -> Iterator[Database]:
    database = backend.database("recommendation", tmp_path)
    upgrade(database, MIGRATIONS, VERSION_TABLE)
    yield database
    database.dispose()


def unit(
    database: Database, *, write: bool = True, delivery: Delivery | None = None
) -> SqlAlchemyRecommendationUnitOfWork:
    return SqlAlchemyRecommendationUnitOfWork(database, inbox=Inbox(orm.INBOX), write=write, delivery=delivery)


def order(database: Database, user_id: uuid.UUID, *lines: tuple[int, int]) -> uuid.UUID:
    order_id = uuid.uuid4()
    with unit(database) as uow:
        uow.profiles.create(user_id, now=NOW)
        uow.profiles.record(order_id, user_id, Basket.of((p(number), units) for number, units in lines))
        uow.commit()
    return order_id


def cancel(database: Database, order_id: uuid.UUID, user_id: uuid.UUID) -> None:
    with unit(database) as uow:
        uow.profiles.cancel(order_id, user_id)
        uow.commit()


def rows(database: Database, table: object) -> set[tuple[object, ...]]:
    with database.engine.connect() as connection:
        return {tuple(row) for row in connection.execute(select(table))}  # type: ignore[call-overload]


def history(database: Database, user_id: uuid.UUID, *, top: int = 10) -> History:
    with unit(database, write=False) as uow:
        return uow.profiles.history(user_id, top=top)


def test_the_migration_builds_exactly_the_models_tables_and_reverts(database: Database) -> None:
    with database.begin() as connection:  # reflection looks where the search path points
        context = MigrationContext.configure(connection, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, orm.RecommendationBase.metadata) == []

    downgrade(database, MIGRATIONS, VERSION_TABLE, "base")

    assert set(inspect(database.engine).get_table_names(schema=database.schema)) == {VERSION_TABLE}


def test_a_profile_is_created_once_and_keeps_its_first_time(database: Database) -> None:
    with unit(database) as uow:
        uow.profiles.create(ALICE, now=NOW)
        uow.commit()
    with unit(database) as uow:
        uow.profiles.create(ALICE, now=NOW + timedelta(days=1))
        uow.commit()

    assert rows(database, PROFILES) == {(ALICE, NOW)}


def test_several_orders_add_up_purchases_popularity_and_pairs(database: Database) -> None:
    order(database, ALICE, (1, 2), (2, 1))
    order(database, ALICE, (1, 3), (3, 1))
    order(database, BOB, (2, 5), (3, 1), (1, 1))

    assert rows(database, PROFILES) == {(ALICE, NOW), (BOB, NOW)}
    assert rows(database, PURCHASES) == {
        (ALICE, p(1), 5, 2),
        (ALICE, p(2), 1, 1),
        (ALICE, p(3), 1, 1),
        (BOB, p(1), 1, 1),
        (BOB, p(2), 5, 1),
        (BOB, p(3), 1, 1),
    }
    assert rows(database, POPULARITY) == {(p(1), 3), (p(2), 2), (p(3), 2)}
    assert rows(database, PAIRS) == {
        (p(1), p(2), 2),
        (p(2), p(1), 2),
        (p(1), p(3), 2),
        (p(3), p(1), 2),
        (p(2), p(3), 1),
        (p(3), p(2), 1),
    }


def test_a_cancelled_order_is_subtracted_and_what_it_alone_counted_is_gone(database: Database) -> None:
    order(database, ALICE, (1, 2), (2, 1))
    second = order(database, ALICE, (1, 3), (3, 1))
    order(database, BOB, (1, 1))

    cancel(database, second, ALICE)

    assert rows(database, PURCHASES) == {(ALICE, p(1), 2, 1), (ALICE, p(2), 1, 1), (BOB, p(1), 1, 1)}
    assert rows(database, POPULARITY) == {(p(1), 2), (p(2), 1)}
    assert rows(database, PAIRS) == {(p(1), p(2), 1), (p(2), p(1), 1)}


def test_a_cancellation_counts_once_however_often_it_comes(database: Database) -> None:
    kept = order(database, ALICE, (1, 1))
    cancelled = order(database, BOB, (1, 1))
    for _ in range(3):
        cancel(database, cancelled, BOB)

    assert rows(database, POPULARITY) == {(p(1), 1)}
    assert rows(database, PURCHASES) == {(ALICE, p(1), 1, 1)}
    assert kept != cancelled


def test_an_order_cancelled_before_it_arrives_is_never_counted(database: Database) -> None:
    order_id = uuid.uuid4()
    cancel(database, order_id, ALICE)
    with unit(database) as uow:
        uow.profiles.record(order_id, ALICE, Basket.of([(p(1), 1), (p(2), 1)]))
        uow.commit()

    for table in (PURCHASES, POPULARITY, PAIRS):
        assert rows(database, table) == set()


def test_nothing_is_kept_without_a_commit(database: Database) -> None:
    with unit(database) as uow:
        uow.profiles.create(ALICE, now=NOW)
        uow.profiles.record(uuid.uuid4(), ALICE, Basket.of([(p(1), 1), (p(2), 1)]))

    for table in (PROFILES, PURCHASES, POPULARITY, PAIRS):
        assert rows(database, table) == set()


def test_concurrent_writers_lose_no_count(database: Database) -> None:
    writers, orders_each = 6, 5
    errors: list[BaseException] = []

    def place_orders(user_id: uuid.UUID) -> None:
        try:
            for _ in range(orders_each):
                order(database, user_id, (1, 1), (2, 2))
        except BaseException as error:  # noqa: BLE001  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=place_orders, args=(uuid.uuid4(),)) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = writers * orders_each
    assert errors == []
    assert rows(database, POPULARITY) == {(p(1), total), (p(2), total)}
    assert rows(database, PAIRS) == {(p(1), p(2), total), (p(2), p(1), total)}


def test_history_holds_what_was_bought_and_the_pairs_leading_elsewhere(database: Database) -> None:
    order(database, BOB, (1, 1), (2, 1), (3, 1))
    order(database, BOB, (1, 1), (4, 1))
    order(database, CAROL, (5, 1))
    order(database, ALICE, (1, 1), (2, 1))

    seen = history(database, ALICE)

    assert seen.bought == {p(1), p(2)}
    assert seen.together == {(p(1), p(3)): 1, (p(2), p(3)): 1, (p(1), p(4)): 1}
    assert seen.popularity == {p(3): 1, p(4): 1, p(5): 1}
    assert recommend(seen)[0].product_id == p(3)


def test_history_of_a_stranger_holds_only_the_most_popular_products(database: Database) -> None:
    for number, times in ((1, 3), (2, 1), (3, 3), (4, 2)):
        for _ in range(times):
            order(database, BOB, (number, 1))

    seen = history(database, CAROL, top=3)

    assert seen.bought == frozenset()
    assert seen.together == {}
    assert seen.popularity == {p(1): 3, p(3): 3, p(4): 2}


def test_the_popular_products_read_are_the_top_ones_not_bought(database: Database) -> None:
    for number in range(1, 8):
        for _ in range(number):
            order(database, BOB, (number, 1))
    order(database, ALICE, (7, 1), (6, 1))

    seen = history(database, ALICE, top=2)

    # 7 and 6 were bought by Alice; their partner (each other) too: so no pairs, top 2 of the rest.
    assert seen.popularity == {p(5): 5, p(4): 4}
    assert [pick.product_id for pick in recommend(seen)] == [p(5), p(4)]
    assert all(pick.reason is Reason.POPULAR for pick in recommend(seen))


def test_history_holds_only_the_pairs_of_the_best_candidates(database: Database) -> None:
    """The database ranks and cuts: with 30 products bought with Alice's, only the ``top`` best
    come back with their pairs (before, all 30 did, and every pair of a best seller)."""
    for partner in range(10, 40):
        for _ in range(partner % 4 + 1):
            order(database, BOB, (1, 1), (partner, 1))
    order(database, ALICE, (1, 1))

    seen = history(database, ALICE, top=5)

    # Bought with product 1 most often: 4 times those ≡ 3 (mod 4), ties by popularity, then id.
    assert seen.together == {(p(1), p(partner)): 4 for partner in (11, 15, 19, 23, 27)}
    assert [pick.product_id for pick in recommend(seen, limit=5)] == [p(11), p(15), p(19), p(23), p(27)]


def full_history(database: Database, user_id: uuid.UUID) -> History:
    """Every count there is, as the ranking's rules read them: the reference for a cut history."""
    with database.engine.connect() as connection:
        bought = frozenset(connection.scalars(select(PURCHASES.c.product_id).where(PURCHASES.c.user_id == user_id)))
        pairs = connection.execute(select(PAIRS.c.product_id, PAIRS.c.other_product_id, PAIRS.c["count"])).all()
        popularity = connection.execute(select(POPULARITY.c.product_id, POPULARITY.c.orders)).all()
    return History(
        bought=bought,
        together={(one, other): count for one, other, count in pairs},
        popularity={product: orders for product, orders in popularity},
    )


def test_ranking_from_the_cut_history_is_ranking_from_every_count(database: Database) -> None:
    """Random orders with many ties (few products, small counts), random ids so their order is
    tested too; for every customer and skipped products among their best, the database's cut
    gives the list the whole history gives."""
    chance = random.Random(11)
    products = [uuid.uuid4() for _ in range(25)]
    customers = [uuid.uuid4() for _ in range(12)]
    for _ in range(60):
        basket = Basket.of((product, 1) for product in chance.sample(products, chance.randint(1, 4)))
        with unit(database) as uow:
            user_id = chance.choice(customers)
            uow.profiles.create(user_id, now=NOW)
            uow.profiles.record(uuid.uuid4(), user_id, basket)
            uow.commit()

    for user_id in [*customers, uuid.uuid4()]:
        everything = full_history(database, user_id)
        best = [pick.product_id for pick in recommend(everything)]
        for skip in (set(), set(best[:1]), set(best[::2])):
            cut = history(database, user_id, top=MAX_RECOMMENDATIONS + len(skip))
            assert recommend(cut, skip=skip) == recommend(everything, skip=skip), (user_id, skip)


def test_the_most_popular_products_are_read_from_the_ranked_index(database: Database) -> None:
    for number in range(1, 6):
        order(database, BOB, (number, 1), (number + 10, 1))

    plans = plans_of(database.engine, lambda: history(database, CAROL, top=3), planner={"enable_seqscan": "off"})

    # The query for the most popular products not bought: the only one ordered by orders alone.
    most_popular = next(plan for sql, plan in plans if "recommendation_popularity.orders DESC" in sql)
    if database.engine.dialect.name == "sqlite":
        assert "SCAN recommendation_popularity USING COVERING INDEX ix_recommendation_popularity_ranked" in most_popular
        assert "TEMP B-TREE" not in most_popular, most_popular
    else:
        assert "Index Only Scan using ix_recommendation_popularity_ranked" in most_popular, most_popular
        assert "Sort" not in most_popular, most_popular


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda dialect: str(dialect.name))
def test_counts_are_added_in_the_database_on_postgresql_too(dialect: Dialect) -> None:
    statement = counting_upsert(dialect.name, PAIRS, ["count"])

    sql = " ".join(str(statement.compile(dialect=dialect)).split())

    assert sql.startswith("INSERT INTO recommendation_pairs (product_id, other_product_id, count)")
    assert sql.endswith(
        "ON CONFLICT (product_id, other_product_id) DO UPDATE SET count = (recommendation_pairs.count + excluded.count)"
    )


def blocked_by(database: Database, pid: int) -> bool:
    """Whether another backend waits for a lock the backend ``pid`` holds."""
    with database.engine.connect() as connection:
        waiting = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE %(pid)s = ANY(pg_blocking_pids(pid))", {"pid": pid}
        )
        return bool(waiting.scalar_one())


def while_uncommitted(
    database: Database,
    first: Callable[[SqlAlchemyRecommendationUnitOfWork], None],
    second: Callable[[], None],
    *,
    then: Callable[[SqlAlchemyRecommendationUnitOfWork], None] = lambda uow: None,
) -> None:
    """Run ``first`` in a transaction held open until ``second``, in another thread and
    transaction, waits for it; then ``then`` in the same transaction, commit it and let
    ``second`` finish."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): the interleaving needs PostgreSQL")
    errors: list[BaseException] = []

    def run_second() -> None:
        try:
            second()
        except BaseException as error:  # noqa: BLE001  # reported by the assertion below
            errors.append(error)

    with unit(database) as uow:
        first(uow)
        pid = uow.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        thread = threading.Thread(target=run_second)
        thread.start()
        deadline = time.monotonic() + 30
        while not blocked_by(database, pid):
            assert thread.is_alive() and time.monotonic() < deadline, "the second transaction never waited"
            time.sleep(0.01)
        then(uow)
        uow.commit()
    thread.join()
    assert errors == []


def test_a_cancellation_handled_while_the_order_is_being_recorded_subtracts_it(database: Database) -> None:
    """Before, the cancellation's UPDATE missed the uncommitted order, noting it then hit the
    committed one and did nothing: the order counted for ever."""
    order_id = uuid.uuid4()

    def place(uow: SqlAlchemyRecommendationUnitOfWork) -> None:
        uow.profiles.create(ALICE, now=NOW)
        uow.profiles.record(order_id, ALICE, Basket.of([(p(1), 1), (p(2), 1)]))

    while_uncommitted(database, place, lambda: cancel(database, order_id, ALICE))

    for table in (PURCHASES, POPULARITY, PAIRS):
        assert rows(database, table) == set()


def test_an_order_recorded_while_its_cancellation_is_uncommitted_is_never_counted(database: Database) -> None:
    order_id = uuid.uuid4()

    def place() -> None:
        with unit(database) as uow:
            uow.profiles.record(order_id, ALICE, Basket.of([(p(1), 1), (p(2), 1)]))
            uow.commit()

    while_uncommitted(database, lambda uow: uow.profiles.cancel(order_id, ALICE), place)

    for table in (PURCHASES, POPULARITY, PAIRS):
        assert rows(database, table) == set()


def test_an_order_counted_while_a_cancellation_of_the_same_product_runs_deadlocks_with_nothing(
    database: Database,
) -> None:
    """A cancellation locks the buyer's purchases row, then the product's popularity. The
    delivered count once was one statement of WITHs (1d92300, reverted), which PostgreSQL ran
    popularity first: it took the popularity row, waited for the purchases row, and the
    cancellation's next UPDATE closed the cycle (DeadlockDetected). The repository's
    statements take purchases first, so the count waits for the cancellation and then adds."""
    order(database, ALICE, (1, 1))
    placed = OrderPlaced(
        order_id=uuid.uuid4(),
        user_id=ALICE,
        lines=(OrderedLine(product_id=p(1), quantity=2, unit_price=Decimal("1.00"), sku="P1", name="One"),),
        total=Decimal("2.00"),
        currency="EUR",
    )

    def units(*, write: bool = True, delivery: Delivery | None = None) -> SqlAlchemyRecommendationUnitOfWork:
        return unit(database, write=write, delivery=delivery)

    def count() -> None:
        # The adapter does not match the port to mypy (its __exit__ and repository types); the
        # container wires it unchecked the same way.
        when_order_placed_record_purchase(
            placed,
            Delivery("recommendation.purchases", uuid.uuid4()),
            record_purchase=RecordPurchaseHandler(uow=units),  # type: ignore[arg-type]
        )

    def lock_purchases(uow: SqlAlchemyRecommendationUnitOfWork) -> None:
        uow.session.execute(
            update(PURCHASES)
            .where(PURCHASES.c.user_id == ALICE, PURCHASES.c.product_id == p(1))
            .values(units=PURCHASES.c.units + 10)
        )

    def then_popularity(uow: SqlAlchemyRecommendationUnitOfWork) -> None:
        uow.session.execute(
            update(POPULARITY).where(POPULARITY.c.product_id == p(1)).values(orders=POPULARITY.c.orders + 10)
        )

    while_uncommitted(database, lock_purchases, count, then=then_popularity)

    assert rows(database, PURCHASES) == {(ALICE, p(1), 13, 2)}
    assert rows(database, POPULARITY) == {(p(1), 12)}
