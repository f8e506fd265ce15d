"""The settings of event delivery, housekeeping and mail are validated at start-up: a bad value
stops the app with an error naming the setting, and never quotes an SMTP password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.factory import container_of, create_app
from contexts.notification.adapters.mailers import FileMailer, SmtpMailer
from tests.conftest import Backend, MakeApp, settings_for, stop_app


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("events_workers", 0),
        ("events_workers", 65),
        ("events_max_attempts", 0),
        ("events_retry_base_seconds", 0),
        ("events_claim_timeout_seconds", 0.5),
        ("events_poll_seconds", 0),
        ("events_retention_hours", -1),
        ("reservation_ttl_seconds", 0),
        ("maintenance_interval_seconds", 0),
        ("smtp_url", "http://mail.example.com"),
        ("smtp_url", "smtp://user:hunter2-secret@"),
        ("smtp_url", "smtp://mail.example.com/path"),
        ("smtp_timeout_seconds", 0),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(tmp_path: Path, setting: str, value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        create_app(settings_for(tmp_path / "instance", **{setting: value}))
    assert setting in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_the_mailer_is_smtp_when_a_url_is_set_and_eml_files_otherwise(tmp_path: Path) -> None:
    files = create_app(settings_for(tmp_path / "files"))
    smtp = create_app(settings_for(tmp_path / "smtp", smtp_url="smtp+starttls://shop:pw@mail.example.com"))
    try:
        assert isinstance(container_of(files).notification.mailer(), FileMailer)
        assert isinstance(container_of(smtp).notification.mailer(), SmtpMailer)
    finally:
        stop_app(files)
        stop_app(smtp)


def test_deliveries_run_eight_at_a_time_on_postgresql_and_four_on_sqlite(make_app: MakeApp, backend: Backend) -> None:
    """On PostgreSQL a delivery mostly waits for the server's answers, which more workers
    overlap; on SQLite more would only queue for the file's one writer."""
    unset = container_of(make_app()).dispatcher()
    chosen = container_of(make_app(events_workers=3)).dispatcher()

    assert unset.workers == (8 if backend.name == "postgresql" else 4)
    assert chosen.workers == 3
