"""Buyers racing for the last units of a product: as threads, or as threads in client processes.

Its own module, apart from the tests, because client processes are started with "spawn" and
import the module of the function they run: this one imports httpx and the harness's HTTP
helpers only, not the shop (``tests/unit/test_e2e_server.py`` keeps it so), and a client
process starts in a fifth of the time.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tests.e2e.server import API, REQUEST_TIMEOUT

BARRIER_TIMEOUT = 60.0


@dataclass(frozen=True)
class Buyer:
    index: int
    headers: dict[str, str]
    quantity: int
    url: str


@dataclass(frozen=True)
class Answer:
    buyer: int
    quantity: int
    status: int
    content_type: str
    body: Any
    sent_at: float  # wall-clock seconds, comparable across client processes
    answered_at: float


def buy(buyer: Buyer, product_id: str, barrier: Any) -> Answer:
    """Connect, wait for every other buyer, then order ``buyer.quantity`` units."""
    with httpx.Client(base_url=buyer.url, timeout=REQUEST_TIMEOUT) as client:
        client.get("/healthz").raise_for_status()  # the connection is open before the race
        barrier.wait(timeout=BARRIER_TIMEOUT)
        sent_at = time.time()
        response = client.post(
            f"{API}/orders",
            json={"items": [{"product_id": product_id, "quantity": buyer.quantity}]},
            headers=buyer.headers,
        )
        answered_at = time.time()
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Answer(
        buyer.index,
        buyer.quantity,
        response.status_code,
        response.headers.get("content-type", ""),
        body,
        sent_at,
        answered_at,
    )


def buy_in_threads(buyers: Sequence[Buyer], product_id: str, barrier: Any) -> list[Answer]:
    with ThreadPoolExecutor(max_workers=len(buyers)) as pool:
        futures = [pool.submit(buy, buyer, product_id, barrier) for buyer in buyers]
        return [future.result(timeout=BARRIER_TIMEOUT + REQUEST_TIMEOUT) for future in futures]


def client_process(buyers: Sequence[Buyer], product_id: str, barrier: Any, results: Any) -> None:
    """A client process: its buyers race as threads; the answers (or the error) go back."""
    try:
        results.put(("ok", buy_in_threads(buyers, product_id, barrier)))
    except Exception:  # noqa: BLE001 - any failure goes back to the test, which reports it
        barrier.abort()  # the other processes stop waiting at once
        results.put(("error", traceback.format_exc()))
