"""What the shop tells its operators beyond its logs: its Prometheus metrics."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from app.config.base import SettingsGroup, long_enough


class ObservabilitySettings(SettingsGroup):
    metrics_enabled: bool = Field(True, description="serve GET /metrics (Prometheus' text format)")
    metrics_token: SecretStr | None = Field(
        None, description="when set, /metrics answers only requests bearing it (Authorization: Bearer …)"
    )

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        return long_enough(value)

    def metrics_token_value(self) -> str | None:
        return self.metrics_token.get_secret_value() if self.metrics_token else None
