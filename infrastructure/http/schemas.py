"""Pydantic types shared by every context's response models: they shape the JSON and, through
the OpenAPI document, describe it, so what is served and what is documented cannot drift."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"
# An invalid request is told what to fix, not everything that is wrong: a body of a million
# unknown keys must not become a problem document of a million errors.
MAX_REPORTED_ERRORS = 20

Money = Annotated[
    Decimal,
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": MONEY_PATTERN,
            "description": "a decimal amount with two places",
            "examples": ["12.50"],
        },
        mode="serialization",
    ),
]


class ResponseModel(BaseModel):
    """Built from the application's DTOs (frozen dataclasses) by attribute."""

    model_config = ConfigDict(from_attributes=True, frozen=True)


class FieldError(BaseModel):
    field: str = Field(description='where the problem is, e.g. "items[0].quantity"')
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: every error response of the API. Extension members allowed."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="a URI identifying the problem type")
    title: str
    status: int
    detail: str
    instance: str = Field(description="the path of the request")
    errors: list[FieldError] | None = Field(
        None, description=f"for invalid input: what to fix, field by field (the first {MAX_REPORTED_ERRORS} found)"
    )
    errors_omitted: int | None = Field(
        None, description=f"when more than {MAX_REPORTED_ERRORS} errors were found: how many were not listed"
    )
