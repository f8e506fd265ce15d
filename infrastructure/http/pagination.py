"""Opaque keyset cursors: the last row's sort key, base64url-encoded JSON.

A cursor comes back from the client, so it is input like any other: each list endpoint declares
the key it pages by as a :class:`CursorKey` model, and :func:`decode_cursor` accepts only what
that model validates. Anything else (not base64, not JSON, another JSON type, a string a database
cannot compare) is a 400 problem naming ``cursor``, never a query.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from infrastructure.http.problems import Problem

_MAX_CURSOR_LENGTH = 512
# PostgreSQL refuses NUL in text and surrogates cannot be encoded; no key of ours has controls.
_UNSTORABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class CursorKey(BaseModel):
    """The sort key of the last row of a page: what a cursor encodes and how it is checked.

    Strict (a JSON ``null`` or number is not read as text), closed (no other members), and
    every text field is free of control characters and surrogates, whatever its own type says.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if isinstance(value, str) and _UNSTORABLE.search(value):
            raise ValueError("must not contain control characters")
        return value


K = TypeVar("K", bound=CursorKey)


def encode_cursor(key: CursorKey) -> str:
    raw = key.model_dump_json().encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, key_type: type[K]) -> K:
    """The key a cursor carries; a 400 problem naming ``cursor`` if it is not one we made."""
    try:
        if len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        return key_type.model_validate_json(raw)
    except (ValueError, binascii.Error) as error:  # ValidationError and UnicodeError are ValueErrors
        raise Problem(
            400,
            "cursor is not one this API returned",
            title="Invalid input",
            errors=[{"field": "cursor", "message": "not a valid cursor"}],
        ) from error
