"""The recommendation context without a database: the ranking rules (score = co-purchases with
what the customer bought, ties by popularity then id, bought products never, fill-up by
popularity, at most ten), what one order adds to the counts, the subscribers' single commit per
event, and the handler skipping products the catalog no longer has."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contexts.order.events import OrderedLine, OrderPlaced
from contexts.recommendation.application import handlers, subscribers
from contexts.recommendation.domain.exceptions import InvalidBasket
from contexts.recommendation.domain.model import (
    MAX_RECOMMENDATIONS,
    Basket,
    History,
    Reason,
    Recommendation,
    recommend,
)
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery
from tests.fakes.product import FakeProductApi
from tests.fakes.recommendation import Counts, FakeStore

# No example database: it would leave a .hypothesis folder in the working tree.
properties = settings(database=None, max_examples=300, deadline=None)

# The fakes keep no inbox: which delivery a subscriber is handed changes nothing here.
DELIVERY = Delivery("recommendation.purchases", uuid.UUID(int=1))


def p(number: int) -> uuid.UUID:
    """Product number ``number``: ids whose order is the numbers' order."""
    return uuid.UUID(int=number)


def ids(picks: list[Recommendation]) -> list[uuid.UUID]:
    return [pick.product_id for pick in picks]


# --- ranking -----------------------------------------------------------------------------------


def test_nothing_ever_ordered_recommends_nothing() -> None:
    assert recommend(History()) == []


def test_score_is_the_sum_of_co_purchases_with_every_product_bought() -> None:
    history = History(
        bought=frozenset({p(1), p(2)}),
        together={(p(1), p(10)): 2, (p(2), p(10)): 1, (p(1), p(11)): 2, (p(2), p(12)): 1},
    )

    picks = recommend(history)

    assert picks == [
        Recommendation(p(10), 3, Reason.BOUGHT_TOGETHER),
        Recommendation(p(11), 2, Reason.BOUGHT_TOGETHER),
        Recommendation(p(12), 1, Reason.BOUGHT_TOGETHER),
    ]


def test_pairs_starting_from_a_product_not_bought_do_not_count() -> None:
    history = History(bought=frozenset({p(1)}), together={(p(1), p(10)): 1, (p(5), p(11)): 50})

    assert ids(recommend(history)) == [p(10)]


def test_a_product_the_customer_bought_is_never_recommended() -> None:
    history = History(
        bought=frozenset({p(1), p(2)}),
        together={(p(1), p(2)): 9, (p(2), p(1)): 9, (p(1), p(3)): 1},
        popularity={p(1): 100, p(2): 90, p(3): 1, p(4): 50},
    )

    picks = recommend(history)

    assert ids(picks) == [p(3), p(4)]
    assert not {p(1), p(2)} & set(ids(picks))


def test_equal_scores_go_to_the_more_popular_product_first() -> None:
    history = History(
        bought=frozenset({p(1)}),
        together={(p(1), p(10)): 2, (p(1), p(11)): 2, (p(1), p(12)): 2},
        popularity={p(10): 3, p(11): 7, p(12): 5},
    )

    assert ids(recommend(history)) == [p(11), p(12), p(10)]


def test_equal_score_and_popularity_go_by_product_id() -> None:
    history = History(
        bought=frozenset({p(1)}),
        together={(p(1), p(12)): 2, (p(1), p(10)): 2, (p(1), p(11)): 2},
        popularity={p(10): 4, p(11): 4, p(12): 4},
    )

    assert ids(recommend(history)) == [p(10), p(11), p(12)]


def test_product_ids_order_as_their_text_does() -> None:
    low, high = uuid.UUID("0fffffff-ffff-4fff-bfff-ffffffffffff"), uuid.UUID("f0000000-0000-4000-8000-000000000000")
    history = History(popularity={high: 1, low: 1})

    assert ids(recommend(history)) == [low, high]


def test_score_outranks_popularity() -> None:
    history = History(
        bought=frozenset({p(1)}),
        together={(p(1), p(10)): 3, (p(1), p(11)): 1},
        popularity={p(10): 1, p(11): 1000},
    )

    assert ids(recommend(history)) == [p(10), p(11)]


def test_too_few_co_purchases_are_filled_up_with_the_most_popular_products_not_bought() -> None:
    history = History(
        bought=frozenset({p(1)}),
        together={(p(1), p(10)): 1},
        popularity={p(1): 99, p(10): 5, **{p(n): n for n in range(20, 40)}},
    )

    picks = recommend(history)

    assert picks[0] == Recommendation(p(10), 1, Reason.BOUGHT_TOGETHER)
    assert picks[1:] == [Recommendation(p(n), 0, Reason.POPULAR) for n in range(39, 30, -1)]
    assert len(picks) == MAX_RECOMMENDATIONS


def test_the_fill_up_never_repeats_a_product_recommended_for_its_co_purchases() -> None:
    history = History(bought=frozenset({p(1)}), together={(p(1), p(10)): 1}, popularity={p(10): 100, p(11): 1})

    assert recommend(history) == [
        Recommendation(p(10), 1, Reason.BOUGHT_TOGETHER),
        Recommendation(p(11), 0, Reason.POPULAR),
    ]


def test_a_customer_without_purchases_gets_the_most_popular_products_ties_by_id() -> None:
    history = History(popularity={p(5): 2, p(3): 2, p(4): 9, p(6): 1})

    assert recommend(history) == [
        Recommendation(p(4), 0, Reason.POPULAR),
        Recommendation(p(3), 0, Reason.POPULAR),
        Recommendation(p(5), 0, Reason.POPULAR),
        Recommendation(p(6), 0, Reason.POPULAR),
    ]


def test_more_than_ten_co_purchased_products_give_the_best_ten_and_no_popular_ones() -> None:
    history = History(
        bought=frozenset({p(1)}),
        together={(p(1), p(n)): n for n in range(100, 115)},
        popularity={p(999): 10_000},
    )

    picks = recommend(history)

    assert ids(picks) == [p(n) for n in range(114, 104, -1)]
    assert all(pick.reason is Reason.BOUGHT_TOGETHER for pick in picks)


def test_never_more_than_ten_popular_products() -> None:
    assert len(recommend(History(popularity={p(n): 1 for n in range(1, 30)}))) == MAX_RECOMMENDATIONS


def test_a_smaller_limit_is_honoured_and_a_negative_one_refused() -> None:
    history = History(bought=frozenset({p(1)}), together={(p(1), p(10)): 1}, popularity={p(11): 1})

    assert ids(recommend(history, limit=1)) == [p(10)]
    assert recommend(history, limit=0) == []
    with pytest.raises(ValueError):
        recommend(history, limit=-1)


def test_skipped_products_make_room_for_the_next_candidates() -> None:
    history = History(
        bought=frozenset({p(1)}),
        together={(p(1), p(10)): 2, (p(1), p(11)): 1},
        popularity={p(20): 5, p(21): 4},
    )

    assert ids(recommend(history, skip={p(10), p(20)})) == [p(11), p(21)]


def test_counts_of_zero_recommend_nothing() -> None:
    history = History(bought=frozenset({p(1)}), together={(p(1), p(10)): 0}, popularity={p(11): 0})

    assert recommend(history) == []


# --- ranking, for any counts -----------------------------------------------------------------

PRODUCTS = [p(n) for n in range(1, 16)]
products = st.sampled_from(PRODUCTS)
counts = st.integers(min_value=0, max_value=6)


@st.composite
def histories(draw: st.DrawFn) -> History:
    return History(
        bought=frozenset(draw(st.sets(products, max_size=6))),
        together=draw(st.dictionaries(st.tuples(products, products).filter(lambda pair: pair[0] != pair[1]), counts)),
        popularity=draw(st.dictionaries(products, counts)),
    )


def brute_force_score(history: History, candidate: uuid.UUID) -> int:
    """The definition, read literally: sum over bought B of pairs(B, P)."""
    return sum(history.together.get((bought, candidate), 0) for bought in history.bought)


@properties
@given(histories(), st.sets(products, max_size=3))
def test_any_ranking_keeps_every_rule(history: History, skip: set[uuid.UUID]) -> None:
    picks = recommend(history, skip=skip)
    picked = ids(picks)
    popularity = history.popularity

    assert len(picks) <= MAX_RECOMMENDATIONS
    assert len(set(picked)) == len(picked)
    assert not set(picked) & (history.bought | skip)

    eligible = [product for product in PRODUCTS if product not in history.bought | skip]
    scored = [product for product in eligible if brute_force_score(history, product) > 0]
    popular = [product for product in eligible if popularity.get(product, 0) > 0]

    together = [pick for pick in picks if pick.reason is Reason.BOUGHT_TOGETHER]
    filled = [pick for pick in picks if pick.reason is Reason.POPULAR]
    assert picks == together + filled
    assert all(pick.score == brute_force_score(history, pick.product_id) > 0 for pick in together)
    assert all(pick.score == 0 and popularity.get(pick.product_id, 0) > 0 for pick in filled)

    def rank(pick: Recommendation) -> tuple[int, int, uuid.UUID]:
        return (-pick.score, -popularity.get(pick.product_id, 0), pick.product_id)

    assert together == sorted(together, key=rank)
    assert filled == sorted(filled, key=rank)
    # Nothing better was left out: the list is full, or it holds every candidate there is.
    assert len(together) == min(len(scored), MAX_RECOMMENDATIONS)
    if len(picks) < MAX_RECOMMENDATIONS:
        assert set(picked) == set(scored) | set(popular)
    left_out = [product for product in scored if product not in picked]
    for product in left_out:
        assert all(
            rank(pick) < rank(Recommendation(product, brute_force_score(history, product), pick.reason))
            for pick in together
        )
    for product in popular:
        if product not in picked and filled:
            assert (-popularity[product], product) > (-popularity[filled[-1].product_id], filled[-1].product_id)


# --- what one order adds -------------------------------------------------------------------


def test_a_basket_merges_lines_of_one_product() -> None:
    basket = Basket.of([(p(2), 1), (p(1), 3), (p(2), 4)])

    assert basket.units == {p(1): 3, p(2): 5}
    assert basket.products == [p(1), p(2)]


def test_a_basket_pairs_every_two_different_products_once_each_way() -> None:
    basket = Basket.of([(p(3), 1), (p(1), 9), (p(2), 1), (p(1), 1)])

    assert basket.pairs == [(p(1), p(2)), (p(1), p(3)), (p(2), p(1)), (p(2), p(3)), (p(3), p(1)), (p(3), p(2))]


def test_a_single_product_is_bought_together_with_nothing() -> None:
    assert Basket.of([(p(1), 2), (p(1), 2)]).pairs == []


@pytest.mark.parametrize("quantity", [0, -1])
def test_a_basket_refuses_quantities_below_one(quantity: int) -> None:
    with pytest.raises(InvalidBasket):
        Basket.of([(p(1), 1), (p(2), quantity)])


# --- subscribers and the handler, on an in-memory store --------------------------------------


USER = uuid.UUID(int=10**6)
OTHER_USER = uuid.UUID(int=10**6 + 1)


def placed(user_id: uuid.UUID, *lines: tuple[uuid.UUID, int]) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        user_id=user_id,
        lines=tuple(OrderedLine(product_id, units, Decimal("1.00"), "SKU", "Thing") for product_id, units in lines),
        total=Decimal("1.00"),
        currency="EUR",
    )


def registered(user_id: uuid.UUID) -> UserRegistered:
    return UserRegistered(user_id=user_id, email="someone@example.com", name="Someone")


def test_registering_creates_the_profile_in_one_commit() -> None:
    store = FakeStore()

    subscribers.when_user_registered_create_profile(
        registered(USER), DELIVERY, create_profile=handlers.CreateProfileHandler(uow=store)
    )

    assert set(store.committed.profiles) == {USER}
    assert store.commits == 1


def test_an_order_counts_purchases_popularity_and_pairs_in_one_commit() -> None:
    store = FakeStore()
    subscribers.when_user_registered_create_profile(
        registered(USER), DELIVERY, create_profile=handlers.CreateProfileHandler(uow=store)
    )

    subscribers.when_order_placed_record_purchase(
        placed(USER, (p(1), 2), (p(2), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )
    subscribers.when_order_placed_record_purchase(
        placed(USER, (p(1), 3), (p(3), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )

    counts = store.committed
    assert store.commits == 3
    assert counts.purchases == {(USER, p(1)): (5, 2), (USER, p(2)): (1, 1), (USER, p(3)): (1, 1)}
    assert counts.popularity == {p(1): 2, p(2): 1, p(3): 1}
    assert counts.pairs == {(p(1), p(2)): 1, (p(2), p(1)): 1, (p(1), p(3)): 1, (p(3), p(1)): 1}


def test_an_order_before_the_registration_creates_the_profile_and_the_registration_keeps_it() -> None:
    store = FakeStore()

    subscribers.when_order_placed_record_purchase(
        placed(USER, (p(1), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )
    created = store.committed.profiles[USER]
    subscribers.when_user_registered_create_profile(
        registered(USER), DELIVERY, create_profile=handlers.CreateProfileHandler(uow=store)
    )

    assert store.committed.profiles == {USER: created}
    assert store.committed.purchases == {(USER, p(1)): (1, 1)}


def test_an_order_with_an_impossible_line_changes_nothing() -> None:
    store = FakeStore()

    with pytest.raises(InvalidBasket):
        subscribers.when_order_placed_record_purchase(
            placed(USER, (p(1), 1), (p(2), 0)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
        )

    assert store.committed == Counts()
    assert store.commits == 0


def catalog_of(*product_ids: uuid.UUID) -> FakeProductApi:
    """The product context's fake, holding ``product_ids``, each described by its number."""
    catalog = FakeProductApi()
    for product_id in product_ids:
        number, price = product_id.int, str(Decimal(product_id.int) + Decimal("0.50"))
        catalog.add(product_id=product_id, sku=f"SKU-{number}", name=f"Product {number}", price=price, currency="EUR")
    return catalog


def test_the_handler_describes_each_pick_with_the_catalog() -> None:
    store = FakeStore()
    subscribers.when_order_placed_record_purchase(
        placed(OTHER_USER, (p(1), 1), (p(2), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )
    subscribers.when_order_placed_record_purchase(
        placed(USER, (p(1), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )
    subscribers.when_order_placed_record_purchase(
        placed(OTHER_USER, (p(3), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )
    recommend_to = handlers.RecommendHandler(uow=store, products=catalog_of(p(1), p(2), p(3)))

    assert recommend_to(handlers.Recommend(USER)) == [
        handlers.RecommendedProduct(p(2), "SKU-2", "Product 2", Decimal("2.50"), "EUR", 1, Reason.BOUGHT_TOGETHER),
        handlers.RecommendedProduct(p(3), "SKU-3", "Product 3", Decimal("3.50"), "EUR", 0, Reason.POPULAR),
    ]


def test_a_user_without_history_gets_popular_products_or_nothing() -> None:
    store = FakeStore()
    catalog = catalog_of(p(1))
    recommend_to = handlers.RecommendHandler(uow=store, products=catalog)

    assert recommend_to(handlers.Recommend(USER)) == []
    assert catalog.lookups == []

    subscribers.when_order_placed_record_purchase(
        placed(OTHER_USER, (p(1), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )

    assert [item.product_id for item in recommend_to(handlers.Recommend(USER))] == [p(1)]


def test_products_gone_from_the_catalog_are_skipped_and_the_next_move_up() -> None:
    store = FakeStore()
    # p(1) bought with p(2..4); p(5..20) popular on their own, more popular the higher.
    subscribers.when_order_placed_record_purchase(
        placed(OTHER_USER, *((p(n), 1) for n in range(1, 5))),
        DELIVERY,
        record_purchase=handlers.RecordPurchaseHandler(uow=store),
    )
    for n in range(5, 21):
        for _ in range(n):
            subscribers.when_order_placed_record_purchase(
                placed(OTHER_USER, (p(n), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
            )
    subscribers.when_order_placed_record_purchase(
        placed(USER, (p(1), 1)), DELIVERY, record_purchase=handlers.RecordPurchaseHandler(uow=store)
    )
    gone = {p(3), p(20), p(18)}
    catalog = catalog_of(*(p(n) for n in range(1, 21) if p(n) not in gone))

    items = handlers.RecommendHandler(uow=store, products=catalog)(handlers.Recommend(USER))

    assert [item.product_id for item in items] == [p(2), p(4), *(p(n) for n in (19, 17, 16, 15, 14, 13, 12, 11))]
    assert all(item.product_id in catalog.products for item in items)
    assert (catalog.reserve_calls, catalog.release_calls) == ([], []), "recommending never holds or frees stock"
