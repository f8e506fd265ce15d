"""Request bodies and query strings, validated by pydantic models into per-field errors."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import request
from pydantic import AfterValidator, BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema, from_json

from infrastructure.http.problems import Problem
from infrastructure.http.schemas import MAX_REPORTED_ERRORS
from infrastructure.validation_messages import message_for

M = TypeVar("M", bound=BaseModel)


def _document_pattern(json_schema: JsonSchemaValue, pattern: str) -> JsonSchemaValue:
    if "pattern" in json_schema:
        json_schema.setdefault("allOf", []).append({"pattern": pattern})
    else:
        json_schema["pattern"] = pattern
    return json_schema


@dataclass(frozen=True)
class NoControlCharacters:
    """Refuses text with the given control characters, and says so in the JSON Schema.

    ``forbidden`` is the inside of a regex character class, written so that Python and
    ECMA-262 (the dialect of JSON Schema's ``pattern``) read it alike.
    """

    forbidden: str
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        forbidden = re.compile(f"[{self.forbidden}]")

        def check(value: Any) -> Any:
            if isinstance(value, str) and forbidden.search(value):
                raise ValueError(self.message)
            return value

        # Before the string's own validation: a tab that stripping would remove is still refused,
        # as the documented pattern says.
        return core_schema.no_info_before_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return _document_pattern(handler(schema), f"^[^{self.forbidden}]*$")


@dataclass(frozen=True)
class SomeCharacterOf:
    """Requires at least one character of a class (the inside of a regex character class, read
    alike by Python and ECMA-262), with ``message`` if there is none; documented as a pattern."""

    wanted: str
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        wanted = re.compile(f"[{self.wanted}]")

        def check(value: Any) -> Any:
            if isinstance(value, str) and not wanted.search(value):
                raise ValueError(self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return _document_pattern(handler(schema), f"[{self.wanted}]")


@dataclass(frozen=True)
class PatternMeaning:
    """Says what the ``pattern`` constraint before it means, in place of the shop's generic
    "must match the pattern ^...$": for patterns a client meets often (a sku, a price). The
    pattern itself is still checked, and documented, by the constraint."""

    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def validate(value: Any, inner: core_schema.ValidatorFunctionWrapHandler) -> Any:
            try:
                return inner(value)
            except ValidationError as error:
                if any(item["type"] == "string_pattern_mismatch" for item in error.errors()):
                    raise ValueError(self.message) from None
                raise

        return core_schema.no_info_wrap_validator_function(validate, handler(source))


# Characters that change how text around them is shown or read as lines, never needed in a name
# or a description: C1 controls (U+0085 is a line break to Python and mail software), the line
# and paragraph separators, and the bidirectional controls (U+202E shows "gpj.exe" as "exe.jpg").
_INVISIBLE_BREAKS = r"\x80-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
# For text a person reads: no NULs or other control characters (PostgreSQL rejects NUL outright).
# They look at the text as sent, before any stripping.
SINGLE_LINE = NoControlCharacters(
    r"\x00-\x1f\x7f" + _INVISIBLE_BREAKS,
    "must not contain control characters, line or paragraph separators or bidirectional controls",
)
MULTI_LINE = NoControlCharacters(
    r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f" + _INVISIBLE_BREAKS,
    "must not contain control characters other than tabs and line breaks, line or paragraph separators"
    " or bidirectional controls",
)
# Something to show or type: a character that is neither white space (in Python's and ECMA-262's sense
# alike: U+FEFF is white space to the one only) nor a control or invisible formatting character.
NOT_ONLY_INVISIBLE = SomeCharacterOf(
    r"^\s\ufeff\x00-\x1f\x7f" + _INVISIBLE_BREAKS + r"\u200b-\u200d\u2060-\u2065",
    "must contain a character other than white space and control characters",
)


# Surrounding white space is dropped only after the documented constraints were checked on the
# text as sent, so that what the schema accepts and what the server accepts are the same.
STRIPPED = AfterValidator(str.strip)


def id_from_path(raw: str, not_found: Callable[[str], Exception]) -> uuid.UUID:
    """A malformed id in a path names nothing: it is answered like an unknown one (404)."""
    try:
        return uuid.UUID(raw)
    except ValueError as error:
        raise not_found(raw) from error


def field_path(location: tuple[int | str, ...]) -> str:
    """``("items", 0, "quantity")`` → ``"items[0].quantity"``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


# No request body of this API has an object with more members than this; a body that does is
# refused before validation, which would otherwise spend time on an error per member.
MAX_OBJECT_MEMBERS = 100


def _problem(error: ValidationError, where: str) -> Problem:
    details = error.errors(include_url=False, include_input=False)
    if any(item["type"] == "json_invalid" for item in details):
        return _malformed_json()
    errors = [
        {"field": field_path(tuple(item["loc"])), "message": message_for(item)}
        for item in details[:MAX_REPORTED_ERRORS]
    ]
    omitted = len(details) - len(errors)
    return Problem(
        400,
        f"the {where} has {len(details)} invalid field(s)",
        title="Invalid input",
        errors=errors,
        extensions={"errors_omitted": omitted} if omitted else None,
    )


def _malformed_json() -> Problem:
    return Problem(400, "the request body is not valid JSON", title="Malformed JSON")


def _refuse_oversized_objects(raw: bytes) -> None:
    """Stop before validation when an object has more members than any body of the API may."""
    try:
        document = from_json(raw)
    except ValueError as error:
        raise _malformed_json() from error
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if len(value) > MAX_OBJECT_MEMBERS:
                raise Problem(
                    400,
                    f"a JSON object in the request body has {len(value)} members; at most "
                    f"{MAX_OBJECT_MEMBERS} are accepted",
                    title="Invalid input",
                )
            pending.extend(item for item in value.values() if isinstance(item, dict | list))
        elif isinstance(value, list):
            pending.extend(item for item in value if isinstance(item, dict | list))


def parse_body(model: type[M]) -> M:
    """Validate the JSON body. The Content-Type is not insisted on: the body's text decides."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise Problem(400, "a JSON object is required as the request body", title="Invalid input")
    _refuse_oversized_objects(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise _problem(error, "request body") from error


def parse_query(model: type[M], args: Mapping[str, Any] | None = None) -> M:
    source = request.args if args is None else args
    try:
        return model.model_validate(dict(source.items()))
    except ValidationError as error:
        raise _problem(error, "query string") from error
