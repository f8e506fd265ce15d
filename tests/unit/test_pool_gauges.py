"""The pool gauges count what was checked out and came back, whatever SQLAlchemy tells."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, event
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import QueuePool

from infrastructure.observability import instruments
from infrastructure.observability.instruments import pool_name
from infrastructure.observability.metrics import Metrics


def test_a_check_out_refused_whose_reconnection_fails_is_not_counted_in_or_out(tmp_path: Path) -> None:
    """As the PostgreSQL engine's own check-out listener refuses a stale connection while the
    server is down: SQLAlchemy tells of the check-in of a connection whose check-out it never
    told of."""
    connections = 0

    def connect() -> sqlite3.Connection:
        nonlocal connections
        connections += 1
        if connections == 2:
            raise sqlite3.OperationalError("the server is down")
        return sqlite3.connect(tmp_path / "pool.db", check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool, pool_size=2, max_overflow=1)
    refusals = [DisconnectionError("a stale connection")]

    @event.listens_for(engine, "checkout")
    def refuse(*_: Any) -> None:
        if refusals:
            raise refusals.pop()

    metrics = Metrics(CollectorRegistry())
    instruments.observe_pool(engine, metrics)
    registry = metrics.registry
    assert registry is not None

    def gauge(name: str) -> float | None:
        return registry.get_sample_value(name, {"pool": pool_name(engine)})

    with pytest.raises(OperationalError, match="the server is down"):
        engine.connect()
    assert gauge("shop_db_pool_connections_in_use") == 0, "never below what is out"
    with engine.connect():
        assert gauge("shop_db_pool_connections_in_use") == 1
        with engine.connect(), engine.connect():
            assert gauge("shop_db_pool_connections_in_use") == 3
            assert gauge("shop_db_pool_overflow_connections") == 1
    assert (gauge("shop_db_pool_connections_in_use"), gauge("shop_db_pool_overflow_connections")) == (0, 0)
    assert gauge("shop_db_pool_size") == 2
    engine.dispose()
