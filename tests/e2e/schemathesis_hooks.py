"""Schemathesis hooks for ``test_schemathesis.py``; the CLI loads this file by its path.

JSON Schema's ``integer`` admits ``2.0`` (a number with no fractional part), so Schemathesis
sends such numbers for integer fields as valid data. The API deliberately refuses them with a
400 (``{"delta": 2.0}`` in ``tests/contexts/product/integration/test_http.py``), which no JSON
Schema can express. So every whole-number float in a request body goes out as the equal
integer: the same JSON Schema value, hence no change to whether a case is valid, and the fuzzing
stays aimed at everything else.
"""

from __future__ import annotations

from typing import Any

import schemathesis


def whole_numbers_as_integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [whole_numbers_as_integers(item) for item in value]
    if isinstance(value, dict):
        return {key: whole_numbers_as_integers(item) for key, item in value.items()}
    return value


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]) -> None:
    if isinstance(case.body, dict | list | float):
        case.body = whole_numbers_as_integers(case.body)
