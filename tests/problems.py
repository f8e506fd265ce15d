"""Assertions on problem-details responses, shared by the HTTP tests."""

from __future__ import annotations

import json
from typing import Any

from werkzeug.test import TestResponse

PROBLEM_JSON = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def assert_problem(response: TestResponse, status: int, path: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and, if given, this instance path)."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM_JSON
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if path is not None:
        assert body["instance"] == path
    return body


def invalid_fields(response: TestResponse) -> set[str]:
    """The fields a 400 problem names, each with a message."""
    body = assert_problem(response, 400)
    assert isinstance(body.get("errors"), list) and body["errors"], body
    for error in body["errors"]:
        assert isinstance(error["field"], str) and isinstance(error["message"], str) and error["message"]
    return {error["field"] for error in body["errors"]}
