"""``shop serve --prod`` configures gunicorn from the shop's settings, not gunicorn's own."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.production import ProductionServer


def test_gunicorn_takes_workers_threads_and_timeouts_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        instance_path=tmp_path,
        web_workers=3,
        web_threads=5,
        web_timeout_seconds=40,
        web_graceful_timeout_seconds=25,
        web_keepalive_seconds=7,
    )

    config = ProductionServer(settings, host="127.0.0.1", port=8123).cfg

    assert config.bind == ["127.0.0.1:8123"]
    assert (config.workers, config.worker_class_str, config.threads) == (3, "gthread", 5)
    assert (config.timeout, config.graceful_timeout, config.keepalive) == (40, 25, 7)
    assert config.control_socket_disable is True
    assert config.forwarded_allow_ips == [], "forwarded headers are TRUSTED_PROXY_HOPS's business"

