"""The guarded floor of ``bench/compare.py`` (``floor_app.py`` with ``FLOOR_DELIVER=1``) keeps the
guarantees it stands for: each order's event reaches its four effects, and a redelivered event
changes none of them twice. Otherwise it would be no baseline for what the shop's guarantees cost.
"""

from __future__ import annotations

import email
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select, update

from bench import floor_app

BUYER = floor_app.SeedCustomer(str(uuid.uuid4()), "buyer@example.com", "Bea Buyer")


def guarded(tmp_path: Path) -> tuple[floor_app.Engines, floor_app.Deliverer, str]:
    config = floor_app.FloorConfig(
        database_url=f"sqlite:///{tmp_path / 'floor.db'}", schema="floor", token_secret="s", deliver=True
    )
    floor_app.init_db(config)
    product = floor_app.SeedProduct(str(uuid.uuid4()), "SKU-1", "A thing", None, "12.50", "USD", 10)
    floor_app.seed(config, [product], [BUYER])
    engines = floor_app.make_engines(config)
    (tmp_path / "mail").mkdir()
    return engines, floor_app.Deliverer(engines, tmp_path / "mail"), product.id


def effects(engines: floor_app.Engines, product_id: str) -> tuple[int, int, int, int, int, list[str]]:
    with engines.reader.connect() as connection:
        counts = [
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (floor_app.inbox, floor_app.sent_mails, floor_app.audit_log)
        ]
        purchases = connection.execute(
            select(floor_app.purchase_counts.c.purchases).where(floor_app.purchase_counts.c.product_id == product_id)
        ).scalar_one()
        pending = connection.execute(
            select(func.count()).select_from(floor_app.outbox).where(floor_app.outbox.c.delivered_at.is_(None))
        ).scalar_one()
        statuses = list(connection.execute(select(floor_app.orders.c.status)).scalars())
    return counts[0], counts[1], counts[2], purchases, pending, statuses


def test_an_orders_event_reaches_the_four_effects_and_the_outbox_row_is_done(tmp_path: Path) -> None:
    engines, deliverer, product_id = guarded(tmp_path)
    placed = floor_app.place_order(engines, BUYER.id, {product_id: 3})

    assert deliverer.deliver_once() == 1

    assert effects(engines, product_id) == (4, 1, 1, 3, 0, ["confirmed"])
    [mail_file] = (tmp_path / "mail").iterdir()
    mail = email.message_from_bytes(mail_file.read_bytes())
    assert mail["To"] == "Bea Buyer <buyer@example.com>"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert placed["id"] in body.decode()
    assert deliverer.deliver_once() == 0


def test_a_redelivered_event_changes_nothing_twice(tmp_path: Path) -> None:
    engines, deliverer, product_id = guarded(tmp_path)
    floor_app.place_order(engines, BUYER.id, {product_id: 2})
    deliverer.deliver_once()
    # As after a crash between the effects and the outbox row's completion: claimed again.
    with engines.writer.begin() as connection:
        connection.execute(update(floor_app.outbox).values(delivered_at=None, claimed_until=None))

    assert deliverer.deliver_once() == 1

    assert effects(engines, product_id) == (4, 1, 1, 2, 0, ["confirmed"])
    assert len(list((tmp_path / "mail").iterdir())) == 1


def test_a_claimed_row_is_not_claimed_again_before_its_lease_ends(tmp_path: Path) -> None:
    engines, deliverer, product_id = guarded(tmp_path)
    floor_app.place_order(engines, BUYER.id, {product_id: 1})
    with engines.writer.begin() as connection:  # another worker's claim, not yet completed
        connection.execute(
            update(floor_app.outbox).values(claimed_until=datetime.now(timezone.utc) + timedelta(seconds=60))
        )

    assert deliverer.deliver_once() == 0
