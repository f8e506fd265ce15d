"""``GET /metrics`` under ``shop serve --prod`` with two gunicorn workers: whichever worker
answers a scrape counts every worker's requests, and the folder their values live in is the
server's to manage."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import prepare_instance
from tests.e2e.server import REQUEST_TIMEOUT, ShopServer, shop, shop_env

pytestmark = pytest.mark.slow

ROUTE = "/api/v1/products"
REQUESTS = 40


def products_listed(base_url: str) -> float:
    """``shop_http_requests_total`` of the product list, from one scrape on a new connection
    (so gunicorn hands it to whichever worker accepts first)."""
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "shop_http_requests_total" and sample.labels == {
                "method": "GET",
                "route": ROUTE,
                "status": "200",
            }:
                return sample.value
    return 0.0


def a_process_gone() -> int:
    """The pid of a process that has ended (an earlier run's worker)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def worker_pids(folder: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in folder.glob("*.db")}


def test_two_workers_count_every_request_whichever_answers_the_scrape(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    stale = folder / f"counter_{a_process_gone()}.db"
    stale.write_bytes(b"an earlier run's values")
    env = shop_env(tmp_path, WEB_WORKERS="2", WEB_THREADS="2", PROMETHEUS_MULTIPROC_DIR=str(folder))
    prepare_instance(tmp_path)
    with ShopServer(env, tmp_path / "serve.log", options=("--prod",)) as server:
        assert not stale.exists(), "the earlier run's values are cleared at the start"
        for _ in range(REQUESTS):
            # A connection each: the workers take turns accepting them.
            assert httpx.get(server.url + ROUTE, timeout=REQUEST_TIMEOUT).status_code == 200
        pids = worker_pids(folder)
        assert len(pids) >= 2, f"two workers record their values: {sorted(pids)}"
        assert {products_listed(server.url) for _ in range(10)} == {REQUESTS}, server.log_tail()

        # A worker killed outright: the counts it made stay; gunicorn starts another, and the
        # master forgets the dead one's live gauges (its pool's connections in use).
        victim = max(pids)
        assert (folder / f"gauge_livesum_{victim}.db").exists()
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while len(worker_pids(folder) - pids) < 1:
            assert time.monotonic() < deadline, f"no new worker\n{server.log_tail()}"
            httpx.get(server.url + "/healthz", timeout=REQUEST_TIMEOUT)
            time.sleep(0.2)
        assert {products_listed(server.url) for _ in range(5)} == {REQUESTS}, server.log_tail()
        assert not (folder / f"gauge_livesum_{victim}.db").exists(), "its live gauges are forgotten"
        assert (folder / f"counter_{victim}.db").exists(), "its counts are not"


def test_without_a_folder_given_the_server_makes_one_and_removes_it(tmp_path: Path) -> None:
    env = shop_env(tmp_path, WEB_WORKERS="2", WEB_THREADS="2")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    prepare_instance(tmp_path)
    with ShopServer(env, tmp_path / "serve.log", options=("--prod",)) as server:
        for _ in range(6):
            assert httpx.get(server.url + ROUTE, timeout=REQUEST_TIMEOUT).status_code == 200
        assert {products_listed(server.url) for _ in range(4)} == {6}
        made = list((tmp_path / "tmp").glob("shop-metrics-*"))
        assert len(made) == 1 and worker_pids(made[0])
    assert not list((tmp_path / "tmp").glob("shop-metrics-*")), "removed when the server stops"


def test_a_folder_another_running_servers_workers_write_to_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    theirs = folder / f"counter_{os.getpid()}.db"  # this test's process stands for the other server
    theirs.write_bytes(b"their values")
    env = shop_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder))
    prepare_instance(tmp_path)
    refused = shop("serve", "--prod", "--port", "9", env=env, cwd=tmp_path, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "holds the metrics of running processes" in refused.stderr
    assert theirs.exists(), "their values are left alone"
