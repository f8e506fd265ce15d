"""Validation errors in the shop's own words.

pydantic's messages ("List should have at least 1 item after validation, not 0", "Input should
be a valid integer") describe the validator, not the API, and change with pydantic's releases.
The problem documents of the API (and the start-up errors of the settings) say instead what the
field must be, in one voice: "must list at least 1 item", "must be a whole number". The field
path is not part of the message.

Every error type the shop's models can produce has a wording here; a test feeds invalid values
to every field of every request model and fails on a type missing from :data:`WORDING`. A type
not listed still gets a neutral message rather than pydantic's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic_core import ErrorDetails

Wording = Callable[[Mapping[str, Any]], str]


def _fixed(message: str) -> Wording:
    return lambda context: message


def _items(count: Any) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _characters(count: Any) -> str:
    return f"{count} character" if count == 1 else f"{count} characters"


def _at_least_characters(context: Mapping[str, Any]) -> str:
    if context["min_length"] == 1:
        return "must not be empty"
    return f"must be at least {_characters(context['min_length'])} long"


def _at_least_items(context: Mapping[str, Any]) -> str:
    return f"must list at least {_items(context['min_length'])}"


def _own_message(context: Mapping[str, Any]) -> str:
    """A validator of the shop's raised ``ValueError("must ...")``: its text is the message."""
    return str(context["error"])


WHOLE_NUMBER = 'must be a whole number (a JSON integer such as 2, not 2.0 or "2")'
TEXT = "must be text (a JSON string)"
UUID = "must be an id: a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6"
DATE_TIME = "must be a date and time in RFC 3339 form, such as 2026-01-31T09:30:00Z"

WORDING: Mapping[str, Wording] = {
    "missing": _fixed("is required"),
    "extra_forbidden": _fixed("is not a field of this request"),
    "none_required": _fixed("must be null"),
    # Text
    "string_type": _fixed(TEXT),
    "string_sub_type": _fixed(TEXT),
    "string_unicode": _fixed("must be valid Unicode text"),
    "string_too_short": _at_least_characters,
    "string_too_long": lambda context: f"must be at most {_characters(context['max_length'])} long",
    "string_pattern_mismatch": lambda context: f"must match the pattern {context['pattern']}",
    # Numbers
    "int_type": _fixed(WHOLE_NUMBER),
    "int_parsing": _fixed("must be a whole number"),
    "int_from_float": _fixed("must be a whole number"),
    "int_parsing_size": _fixed("must be a whole number of at most 19 digits"),
    "float_type": _fixed("must be a number"),
    "float_parsing": _fixed("must be a number"),
    "finite_number": _fixed("must be a finite number"),
    "decimal_type": _fixed('must be a decimal number written as a string, such as "12.50"'),
    "decimal_parsing": _fixed('must be a decimal number written as a string, such as "12.50"'),
    "decimal_max_digits": lambda context: f"must have at most {context['max_digits']} digits",
    "decimal_max_places": lambda context: f"must have at most {context['decimal_places']} decimal places",
    "decimal_whole_digits": lambda context: f"must have at most {context['whole_digits']} digits before the point",
    "greater_than": lambda context: f"must be greater than {context['gt']}",
    "greater_than_equal": lambda context: f"must be at least {context['ge']}",
    "less_than": lambda context: f"must be less than {context['lt']}",
    "less_than_equal": lambda context: f"must be at most {context['le']}",
    "multiple_of": lambda context: f"must be a multiple of {context['multiple_of']}",
    "bool_type": _fixed("must be true or false"),
    "bool_parsing": _fixed("must be true or false"),
    # Collections and objects
    "list_type": _fixed("must be a list (a JSON array)"),
    "tuple_type": _fixed("must be a list (a JSON array)"),
    "set_type": _fixed("must be a list (a JSON array)"),
    "too_short": _at_least_items,
    "too_long": lambda context: f"must list at most {_items(context['max_length'])}",
    "dict_type": _fixed("must be an object"),
    "model_type": _fixed("must be an object"),
    "model_attributes_type": _fixed("must be an object"),
    # Choices
    "literal_error": lambda context: f"must be one of {context['expected']}",
    "enum": lambda context: f"must be one of {context['expected']}",
    # Ids, dates, times
    "uuid_type": _fixed(UUID),
    "uuid_parsing": _fixed(UUID),
    "uuid_version": _fixed(UUID),
    "datetime_type": _fixed(DATE_TIME),
    "datetime_parsing": _fixed(DATE_TIME),
    "datetime_from_date_parsing": _fixed(DATE_TIME),
    "datetime_object_invalid": _fixed(DATE_TIME),
    "timezone_aware": _fixed("must have a time zone offset, such as Z or +01:00"),
    "date_type": _fixed("must be a date such as 2026-01-31"),
    "date_parsing": _fixed("must be a date such as 2026-01-31"),
    "date_from_datetime_parsing": _fixed("must be a date such as 2026-01-31"),
    # The shop's own validators speak for themselves.
    "value_error": _own_message,
    "assertion_error": _own_message,
}

FALLBACK = "is not valid"


def email_message(reason: str) -> str:
    """Why an address is refused, from email_validator's sentence (``"The email address is not
    valid."``): for pydantic's EmailStr and the shop's own check of what mail can reach alike."""
    reason = reason.strip().removesuffix(".")
    return f"must be an email address: {reason[:1].lower()}{reason[1:]}"


def message_for(error: ErrorDetails) -> str:
    """The shop's message for one pydantic error (reported with its context)."""
    context: Mapping[str, Any] = error.get("ctx", {})
    if error["type"] == "value_error" and "reason" in context:
        # pydantic's EmailStr, the only custom error with a reason: email_validator's sentence.
        return email_message(str(context["reason"]))
    wording = WORDING.get(error["type"])
    if wording is None:
        return FALLBACK
    try:
        return wording(context)
    except KeyError:  # a constraint reported without the number the wording needs
        return FALLBACK
