"""Serving HTTP: the server's processes and threads, what the proxy in front may say, the
headers and limits of every response and request, and the log."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from app.config.base import SettingsGroup, split_list
from infrastructure.logging import LogFormat

_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


class WebSettings(SettingsGroup):
    trusted_proxy_hops: Annotated[int, Field(ge=0, le=10)] = Field(
        0,
        description="reverse proxies in front of the shop that append to X-Forwarded-For; 0 = the header is ignored",
    )
    hsts_seconds: Annotated[int, Field(ge=0, le=2 * 365 * 86400)] = Field(
        0, description="when above 0, Strict-Transport-Security: max-age=N on every HTTPS response"
    )
    cors_allowed_origins: str = Field(
        "", description="comma-separated origins allowed to call the API from a browser; empty = no CORS"
    )
    max_content_length: Annotated[int, Field(ge=1024)] = Field(
        1024 * 1024, description="largest request body in bytes; larger ones get a 413"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat | None = Field(
        None, description="json or console; unset: console lines when standard error is a terminal, else JSON"
    )
    web_workers: Annotated[int, Field(ge=1, le=64)] = Field(
        4, description="`shop serve --prod`: worker processes (each with its own pools and dispatcher)"
    )
    web_threads: Annotated[int, Field(ge=1, le=256)] = Field(
        8, description="`shop serve --prod`: requests each worker serves at the same time"
    )
    web_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(
        30, description="`shop serve --prod`: a worker silent for this long is killed and replaced"
    )
    web_graceful_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(
        30, description="on SIGTERM, how long workers may finish requests and hand deliveries back"
    )
    web_keepalive_seconds: Annotated[int, Field(ge=0, le=300)] = Field(
        5, description="how long an idle client connection is kept open; behind a load balancer, above its idle timeout"
    )

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        origins = split_list(value)
        if origins == ("*",):
            return value
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin like https://shop.example.com (scheme, host, optional port;"
                    " no path), nor a lone '*'"
                )
        return value

    def cors_origins(self) -> tuple[str, ...]:
        return split_list(self.cors_allowed_origins)
