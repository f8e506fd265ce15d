"""The architecture documentation under ``docs/architecture/`` is what ``shop docs`` generates from
the code now: the context map follows the registry, and the event catalogue is a valid AsyncAPI
3.0 document whose payload schemas accept the envelopes the outboxes store."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import infrastructure
from app.docs import ASYNCAPI, asyncapi, context_map, generated, published_events, write_docs
from app.registry import REGISTRY, SUBSCRIPTIONS
from infrastructure.events.envelope import Envelope
from tests.architecture.conftest import REPOSITORY

COMMITTED = REPOSITORY / "docs" / "architecture"
# The AsyncAPI 3.0.0 JSON Schema as the AsyncAPI Initiative publishes it (npm @asyncapi/specs
# 6.11.1, schemas/3.0.0-without-$id.json; Apache-2.0), kept here so the test needs no network.
SCHEMA = Path(__file__).parent / "schemas" / "asyncapi-3.0.0.json"
EVENTS = [event for context in REGISTRY for event in published_events(context.name)]


def test_the_committed_docs_are_what_the_code_generates() -> None:
    committed = {
        path.relative_to(COMMITTED).as_posix(): path.read_text(encoding="utf-8")
        for path in COMMITTED.rglob("*")
        if path.is_file()
    }

    assert committed == generated(), "docs/architecture/ is stale: run `make docs` (or `shop docs`) and commit it"


def test_writing_removes_what_the_code_no_longer_generates(tmp_path: Path) -> None:
    stale = tmp_path / "contexts" / "retired.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("a context that was removed")

    written = write_docs(tmp_path)

    assert not stale.exists()
    assert sorted(path.relative_to(tmp_path).as_posix() for path in written) == sorted(generated())


def test_the_map_draws_every_context_call_and_subscription() -> None:
    drawn = context_map()

    for context in REGISTRY:
        assert f"    {context.name}[{context.name}]" in drawn
        for called in context.calls:
            assert f"    {context.name} -- " in drawn and f"--> {called}" in drawn
    for subscription in SUBSCRIPTIONS:
        edge = next(
            line
            for line in drawn.splitlines()
            if line.startswith(f"    {subscription.publisher} -. ") and line.endswith(f".-> {subscription.subscriber}")
        )
        assert subscription.event_type.TYPE in edge


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_the_event_catalogue_is_a_valid_asyncapi_3_document() -> None:
    document = asyncapi()

    assert list(validator().iter_errors(document)) == []
    assert {message["name"] for message in document["components"]["messages"].values()} == {
        event.TYPE for event in EVENTS
    }
    receivers = {
        operation["summary"].split()[1]
        for operation in document["operations"].values()
        if operation["action"] == "receive"
    }
    assert receivers == {subscription.name for subscription in SUBSCRIPTIONS}


def test_the_schema_check_catches_a_document_that_is_not_asyncapi_3() -> None:
    """Not vacuous: an AsyncAPI 2 style operation (``publish``) is refused."""
    document = copy.deepcopy(asyncapi())
    next(iter(document["operations"].values()))["action"] = "publish"

    assert list(validator().iter_errors(document)) != []


def _payload_schema(event_type: str) -> dict[str, Any]:
    """The message's payload with the catalogue's components, so that its references resolve."""
    document = asyncapi()
    message = next(m for m in document["components"]["messages"].values() if m["name"] == event_type)
    return {**message["payload"], "components": document["components"]}


@pytest.mark.parametrize("event_class", EVENTS, ids=[event.TYPE for event in EVENTS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_envelope_an_outbox_stores_matches_its_payload_schema(event_class: type[Any], data: Any) -> None:
    event = data.draw(st.from_type(event_class))
    envelope = Envelope(event).to_dict()

    jsonschema.validate(envelope, _payload_schema(event_class.TYPE), cls=jsonschema.Draft7Validator)


def test_the_readme_links_the_docs() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")

    assert "docs/architecture/README.md" in readme
    assert f"docs/architecture/{ASYNCAPI}" in readme


def test_every_test_module_is_mapped_in_the_tests_readme() -> None:
    """``tests/README.md`` maps features to tests: a new test module must be placed in it."""
    tests = REPOSITORY / "tests"
    mapped = (tests / "README.md").read_text(encoding="utf-8")
    modules = sorted(path.relative_to(tests).as_posix() for path in tests.glob("**/test_*.py"))

    assert modules
    assert [module for module in modules if f"`{module}`" not in mapped] == []


def test_the_infrastructure_package_names_each_of_its_packages_and_modules() -> None:
    """``infrastructure/__init__.py`` is the map of the kernel: a new package or module is placed in it."""
    folder = REPOSITORY / "infrastructure"
    parts = [path.stem for path in folder.glob("*.py") if path.stem != "__init__"]
    parts += [path.parent.name for path in folder.glob("*/__init__.py")]
    mapped = re.findall(r"^- ``(\w+)``:", infrastructure.__doc__ or "", flags=re.MULTILINE)

    assert parts
    assert sorted(mapped) == sorted(parts), "infrastructure/__init__.py names what is there, and only that"
