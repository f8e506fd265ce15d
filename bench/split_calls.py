"""A remote call's own cost: the published ProductApi in process against over loopback HTTP.

Run by ``bench/split.py`` with the measured checkout's interpreter (its ``.venv/bin/python``),
so that the shop code timed here is that checkout's: this file imports only the shop's own
packages, which that interpreter finds through its editable install, and never puts this
file's checkout on ``sys.path``. The environment is the product service's (its databases,
token secret and service token); ``--product-url`` is where that service listens.

Two implementations of :class:`~contexts.product.api.ProductApi` are built as a process of the
shop builds them (``build_container``): the in-process facade (a process serving the product
context) and the remote client (a process serving the order context, ``PRODUCT_SERVICE_URL``
set). Each call is timed alternately on both, so both see the same load; each reservation gets
a new id, one line of one unit of a random product. What the order flow calls per order is
timed too: ``get_products`` then ``reserve``, or ``reserve_priced`` where the checkout has it.
Prints one JSON object (medians and p90s in ms). ``--profile DIR`` also writes cProfile dumps
and their summaries: the client's calls, and the service's side run through Flask's test client.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.config import Settings
from app.containers import build_container
from app.factory import create_app
from contexts.product.api import ProductApi, ReservationLine

PROFILE_LINES = 35


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def apis(product_url: str) -> tuple[ProductApi, ProductApi]:
    """The in-process facade and the remote client, each as a shop process would build it."""
    local = build_container(Settings(served_contexts="product")).product_api()
    remote = build_container(Settings(served_contexts="order", product_service_url=product_url)).product_api()
    return local, remote


def operations(api: ProductApi, product_ids: Sequence[uuid.UUID]) -> dict[str, Callable[[], object]]:
    """What is timed, by name: the published operations, and what placing an order calls."""

    def line() -> list[ReservationLine]:
        return [ReservationLine(random.choice(product_ids), 1)]

    def order_flow() -> None:
        lines = line()
        if hasattr(api, "reserve_priced"):
            api.reserve_priced(uuid.uuid4(), lines)
        else:
            api.get_products([lines[0].product_id])
            api.reserve(uuid.uuid4(), lines)

    found: dict[str, Callable[[], object]] = {
        "get_products": lambda: api.get_products([random.choice(product_ids)]),
        "reserve": lambda: api.reserve(uuid.uuid4(), line()),
        "order_flow": order_flow,
    }
    if hasattr(api, "reserve_priced"):
        found["reserve_priced"] = lambda: api.reserve_priced(uuid.uuid4(), line())
    return found


def measure(local: ProductApi, remote: ProductApi, product_ids: Sequence[uuid.UUID], calls: int) -> dict[str, Any]:
    both = {"in_process": operations(local, product_ids), "remote": operations(remote, product_ids)}
    samples: dict[str, dict[str, list[float]]] = {where: {name: [] for name in both[where]} for where in both}
    for operation in both["remote"].values():  # warm both: connections, caches, JIT-less imports
        operation()
    for _ in range(calls):
        for name in both["remote"]:
            for where in ("in_process", "remote"):
                started = time.perf_counter()
                both[where][name]()
                samples[where][name].append((time.perf_counter() - started) * 1000)
    result: dict[str, Any] = {}
    for name in both["remote"]:
        local_ms, remote_ms = samples["in_process"][name], samples["remote"][name]
        result[name] = {
            "in_process_p50_ms": statistics.median(local_ms),
            "remote_p50_ms": statistics.median(remote_ms),
            "overhead_p50_ms": statistics.median(remote_ms) - statistics.median(local_ms),
            "in_process_p90_ms": percentile(local_ms, 0.9),
            "remote_p90_ms": percentile(remote_ms, 0.9),
        }
    return result


def write_profile(profile: cProfile.Profile, path: Path) -> None:
    profile.dump_stats(str(path.with_suffix(".prof")))
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("cumulative").print_stats(PROFILE_LINES)
    stats.sort_stats("tottime").print_stats(PROFILE_LINES)
    path.with_suffix(".txt").write_text(text.getvalue())


def profile_calls(call: Callable[[], object], calls: int, path: Path) -> None:
    """``calls`` calls profiled after one unprofiled (connections and caches warm), written to ``path``."""
    call()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        call()
    profile.disable()
    write_profile(profile, path)


def profile_client(remote: ProductApi, product_ids: Sequence[uuid.UUID], calls: int, folder: Path) -> None:
    for name, operation in operations(remote, product_ids).items():
        profile_calls(operation, calls, folder / f"split-client-{name}")


def profile_service(product_ids: Sequence[uuid.UUID], calls: int, folder: Path) -> None:
    """The product service's side of the internal calls, without the network: its app in this
    process, the requests through Flask's test client."""
    settings = Settings(served_contexts="product")
    app = create_app({"served_contexts": "product"})
    assert settings.service_token is not None
    headers = {"Authorization": f"Bearer {settings.service_token.get_secret_value()}"}
    client = app.test_client()
    prefix = "/internal/v1/product"

    def get_products() -> None:
        query = {"ids": [str(random.choice(product_ids))]}
        answer = client.get(f"{prefix}/products", query_string=query, headers=headers)
        assert answer.status_code == 200, answer.data

    def reserve() -> None:
        body = {"lines": [{"product_id": str(random.choice(product_ids)), "quantity": 1}]}
        answer = client.put(f"{prefix}/reservations/{uuid.uuid4()}", json=body, headers=headers)
        assert answer.status_code in (200, 204), answer.data

    for name, call in (("get_products", get_products), ("reserve", reserve)):
        profile_calls(call, calls, folder / f"split-service-{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--product-url", required=True)
    parser.add_argument("--product-ids", required=True, help="comma-separated ids of products with ample stock")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", type=Path, help="write cProfile dumps and summaries into this folder")
    args = parser.parse_args()
    product_ids = [uuid.UUID(value) for value in args.product_ids.split(",")]
    local, remote = apis(args.product_url)
    print(json.dumps(measure(local, remote, product_ids, args.calls)))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        profile_client(remote, product_ids, args.calls, args.profile)
        profile_service(product_ids, args.calls, args.profile)


if __name__ == "__main__":
    main()
