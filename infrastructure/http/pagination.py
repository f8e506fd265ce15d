"""Opaque keyset cursors: the last row's sort key, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from infrastructure.http.problems import Problem

_MAX_CURSOR_LENGTH = 512
K = TypeVar("K")


def encode_cursor(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parse: Callable[[dict[str, Any]], K]) -> K:
    """The typed key a cursor carries; a 400 problem naming ``cursor`` if we did not make it."""
    try:
        if len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, dict):
            raise ValueError("not an object")
        return parse(key)
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise Problem(
            400,
            "cursor is not one this API returned",
            title="Invalid input",
            errors=[{"field": "cursor", "message": "not a valid cursor"}],
        ) from error
