"""When tracing is on, and what it exports to: the standard OTEL_* variables, read once per app."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from app.cli import main
from infrastructure.observability.tracing import TracingMisconfigured, tracer_provider_from_env, traces_exporters


def exporters_of(environ: dict[str, str]) -> list[type[object]] | None:
    provider = tracer_provider_from_env("modular-shop-product", environ)
    if provider is None:
        return None
    try:
        processors = provider._active_span_processor._span_processors  # the SDK keeps them here
        assert all(isinstance(processor, BatchSpanProcessor) for processor in processors)
        return [type(processor._batch_processor._exporter) for processor in processors]
    finally:
        provider.shutdown()


def test_off_by_default() -> None:
    assert exporters_of({}) is None
    assert exporters_of({"OTEL_TRACES_EXPORTER": "none"}) is None


def test_an_otlp_endpoint_turns_it_on() -> None:
    assert exporters_of({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == [OTLPSpanExporter]
    assert exporters_of({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}) == [OTLPSpanExporter]


def test_the_exporters_named() -> None:
    assert exporters_of({"OTEL_TRACES_EXPORTER": "console"}) == [ConsoleSpanExporter]
    assert exporters_of({"OTEL_TRACES_EXPORTER": "otlp, console"}) == [OTLPSpanExporter, ConsoleSpanExporter]


def test_the_sdk_disabled_wins() -> None:
    assert exporters_of({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}) is None


def test_an_exporter_the_shop_lacks_is_refused_by_name() -> None:
    with pytest.raises(TracingMisconfigured, match="OTEL_TRACES_EXPORTER: zipkin"):
        tracer_provider_from_env("modular-shop", {"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"OTEL_TRACES_EXPORTER": "console"}, "modular-shop-product"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "catalog"}, "catalog"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "service.name=stock,team=b"}, "stock"),
    ],
)
def test_the_service_is_named_for_its_contexts_unless_the_environment_names_it(
    environ: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)  # the SDK's resource detector reads the process environment
    provider = tracer_provider_from_env("modular-shop-product", environ)
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == expected
    finally:
        provider.shutdown()


def test_an_otlp_protocol_other_than_http_is_refused_by_name() -> None:
    with pytest.raises(TracingMisconfigured, match=r"OTEL_EXPORTER_OTLP_PROTOCOL: .* not grpc"):
        traces_exporters(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        )
    assert traces_exporters({"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == ["console"]


def test_shop_serve_refuses_tracing_settings_it_cannot_follow_before_serving(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--prod"], env={"INSTANCE_PATH": str(tmp_path), "OTEL_TRACES_EXPORTER": "zipkin"}
    )
    assert result.exit_code == 2, result.output
    assert "OTEL_TRACES_EXPORTER: zipkin" in result.output
